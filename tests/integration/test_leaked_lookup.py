"""Leaked-key lookup for keys of rotations that did not complete (concepts.md promise 4: a key is
dead only once its revocation was verified): a live key is never reported dead."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import httpx

from rotator.app import App
from rotator.engine import interventions
from rotator.engine.rotation import Engine
from rotator.keys import fingerprint, secret
from rotator.operations import leaked
from rotator.state.schema import Rotation
from tests.support.world import World


def start(world: World) -> tuple[App, Engine, Rotation]:
    app = world.app()
    rotation = app.db.create_rotation(
        secret=world.name, provider="bw", policy="fast", trigger="manual", reason="test", actor="test"
    )
    return app, app.runner("test").engine, rotation


def advance_until(engine: Engine, rotation: Rotation, *states: str) -> Rotation:
    for _ in range(20):
        if rotation.state in states:
            return rotation
        rotation = engine.advance(rotation).rotation
    raise AssertionError(f"stopped at {rotation.state}")


def pending_key(world: World) -> str:
    got = world.sm.get_secret_value(SecretId=world.secret_id, VersionStage="AWSPENDING")
    return str(json.loads(got["SecretString"])["api_key"])


def fail(world: World, app: App, engine: Engine, rotation: Rotation) -> tuple[Rotation, str]:
    """A rotation whose new key the provider refuses past probe_deadline, rolled back; and that key."""
    staged = advance_until(engine, rotation, "staged")
    made = pending_key(world)
    engine.clock = lambda: app.db.clock() + app.settings.engine.probe_deadline + timedelta(seconds=1)
    failed = advance_until(engine, staged, "failed")
    engine.clock = app.db.clock
    return failed, made


def test_promise_4_the_old_key_of_a_rotation_aborted_at_the_gate_is_alive(world: World) -> None:
    policy = world.dir / "policies" / "main.yaml"
    policy.write_text(policy.read_text().replace("cutover: {min_soak: 0s}", "cutover: {min_soak: 1h}"))
    app, engine, rotation = start(world)
    at_gate = advance_until(engine, rotation, "cutover_wait")
    aborted = interventions.abort(engine, at_gate, why="test")
    assert aborted.state == "failed" and world.probe(world.first["token"]) == 200
    found = leaked.find(app, secret(world.first["token"]))
    assert [(m.slot, m.alive) for m in found.matches] == [(leaked.PREVIOUS, True)]
    assert "still alive" in found.matches[0].describe()


def test_promise_4_the_key_a_rolled_back_rotation_kept_is_alive_and_its_new_key_is_not_called_dead(
    world: World, brandwave: str
) -> None:
    httpx.post(f"{brandwave}/_sandbox/config", json={"refuse_new_keys": True}).raise_for_status()
    app, engine, rotation = start(world)
    failed, made = fail(world, app, engine, rotation)
    assert failed.new_fingerprint is not None
    kept = leaked.find(app, secret(world.first["token"]))
    assert [(m.slot, m.alive) for m in kept.matches] == [(leaked.CURRENT, True)]
    assert all(m.alive for m in leaked.find(app, secret(made)).matches)


def test_promise_4_a_completed_rotation_after_a_failed_one_proves_the_old_key_dead(
    world: World, brandwave: str
) -> None:
    httpx.post(f"{brandwave}/_sandbox/config", json={"refuse_new_keys": True}).raise_for_status()
    app, engine, first = start(world)
    fail(world, app, engine, first)
    httpx.post(f"{brandwave}/_sandbox/config", json={"refuse_new_keys": False}).raise_for_status()
    second = app.db.create_rotation(
        secret=world.name, provider="bw", policy="fast", trigger="manual", reason="test", actor="test"
    )
    done = advance_until(engine, second, "completed")
    found = leaked.find(app, secret(world.first["token"]))
    assert [(m.slot, m.alive, m.rotation.id if m.rotation else None) for m in found.matches] == [
        (leaked.PREVIOUS, False, done.id)
    ]
    assert found.recorded == 2  # both rotations recorded the key as the one they replaced
    current = leaked.find(app, secret(world.current()["api_key"]))
    assert [(m.slot, m.alive) for m in current.matches] == [(leaked.CURRENT, True)]


def test_promise_4_the_pending_key_of_a_rotation_in_flight_is_alive(world: World) -> None:
    app, engine, rotation = start(world)
    staged = advance_until(engine, rotation, "staged")
    found = leaked.find(app, secret(pending_key(world)))
    assert [(m.slot, m.alive, m.rotation.id if m.rotation else None) for m in found.matches] == [
        (leaked.PENDING, True, staged.id)
    ]


def test_promise_4_a_pending_key_no_record_names_is_found_in_the_slots_of_rotations_in_flight(world: World) -> None:
    """A process killed between writing the new key to the pending slot and recording it: no
    rotation names the key's fingerprint, so the lookup reads the pending slots of the rotations
    in flight and finds it there, alive."""
    from sqlalchemy import update

    app, engine, rotation = start(world)
    staged = advance_until(engine, rotation, "staged")
    key = pending_key(world)
    with app.db.session() as s:  # what the record held before the crash
        s.execute(
            update(Rotation)
            .where(Rotation.id == staged.id)
            .values(state="creating", new_key_id=None, new_fingerprint=None, staged_at=None)
        )
    found = leaked.find(app, secret(key))
    assert [(m.secret, m.slot, m.alive, m.rotation.id if m.rotation else None) for m in found.matches] == [
        (world.name, leaked.PENDING, True, staged.id)
    ]
    assert found.recorded == 0 and found.read == 1 + len(app.policies.secrets) - len(app.db.secrets_with_fingerprints())
    assert leaked.find(app, secret(key + "x")).matches == []  # another key is in no slot


def test_a_current_key_no_record_names_is_found_in_the_store(world: World) -> None:
    """The state database behind the store (restored from a backup older than the last rotation):
    the store's current key is made by a rotation the database does not know; a leak of it is
    still found, read from the store, and called alive."""
    app, engine, rotation = start(world)
    done = advance_until(engine, rotation, "completed")
    assert done.state == "completed"
    newer = httpx.post(f"{world.brandwave}/_sandbox/keys", json={"name": "made-after-the-backup"}).json()
    value = {**world.current(), "api_key": newer["secret"], "key_id": newer["id"]}
    # as a rotation makes it current: a version of its own, then the label moved (moto keeps
    # AWSCURRENT where it was on a plain PutSecretValue after a rotation)
    old = world.sm.get_secret_value(SecretId=world.secret_id, VersionStage="AWSCURRENT")["VersionId"]
    new = world.sm.put_secret_value(SecretId=world.secret_id, SecretString=json.dumps(value), VersionStages=["X"])
    world.sm.update_secret_version_stage(
        SecretId=world.secret_id, VersionStage="AWSCURRENT", MoveToVersionId=new["VersionId"], RemoveFromVersionId=old
    )
    assert world.current()["key_id"] == newer["id"]
    found = leaked.find(app, secret(newer["secret"]))
    assert [(m.secret, m.slot, m.alive) for m in found.matches] == [(world.name, leaked.CURRENT, True)]
    assert found.read >= 1


def test_promise_4_a_later_rotation_whose_old_key_only_shares_the_fingerprint_does_not_hide_the_real_one(
    world: World,
) -> None:
    """A fingerprint is 48 bits: when a later rotation's old key has the leaked key's fingerprint
    but its stored version holds another key, the lookup goes on to the earlier rotation that
    really replaced (and revoked) the leaked key, instead of calling the key unknown."""
    from sqlalchemy import update

    app, engine, rotation = start(world)
    first = advance_until(engine, rotation, "completed")
    later = app.db.create_rotation(
        secret=world.name, provider="bw", policy="fast", trigger="manual", reason="test", actor="test"
    )
    later = advance_until(engine, later, "completed")
    leaked_key = secret(world.first["token"])
    with app.db.session() as s:  # the later rotation's old key (another one) collides with the leaked key
        s.execute(update(Rotation).where(Rotation.id == later.id).values(old_fingerprint=fingerprint(leaked_key)))
    found = leaked.find(app, leaked_key)
    assert [(m.slot, m.alive, m.rotation.id if m.rotation else None) for m in found.matches] == [
        (leaked.PREVIOUS, False, first.id)
    ]


def test_promise_4_a_key_proven_dead_is_described_with_when_its_revocation_was_verified(world: World) -> None:
    app, engine, rotation = start(world)
    done = advance_until(engine, rotation, "completed")
    [match] = leaked.find(app, secret(world.first["token"])).matches
    assert (match.slot, match.alive) == (leaked.PREVIOUS, False)
    assert re.fullmatch(
        rf"a previous key of {world.name}, revoked by rotation {done.id} and proven dead "
        r"\(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\); nothing to rotate",
        match.describe(),
    )
