"""The proof steps at their edges (concepts.md promises 1, 3, 4 and 9): what a provider's 5xx or 429
means while probing the new key or verifying the old one, and proof before revoke when the record
no longer matches the store. Each rotation is driven one step at a time (`Engine.advance`), so a
fault lands on exactly the request the test means, and time is moved by the engine's clock, never
waited for."""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

import httpx
import pytest
from sqlalchemy import text

from rotator.app import App
from rotator.engine.proof import ADOPTED
from rotator.engine.rotation import Engine
from rotator.keys import fingerprint, secret
from rotator.providers.brandwave import PATH
from rotator.state.schema import Rotation
from tests.support.world import World


def start(world: World) -> tuple[App, Engine, Rotation]:
    app = world.app()
    rotation = app.db.create_rotation(
        secret=world.name, provider="bw", policy="fast", trigger="manual", reason="test", actor="test"
    )
    return app, app.runner("test").engine, rotation


def step_until(engine: Engine, rotation: Rotation, state: str) -> Rotation:
    for _ in range(20):
        if rotation.state == state:
            return rotation
        rotation = engine.advance(rotation).rotation
    raise AssertionError(f"never reached {state}; stopped at {rotation.state}")


def later(app: App, by: timedelta) -> Callable[[], datetime]:
    return lambda: app.db.clock() + by


@contextmanager
def info_log() -> Iterator[list[str]]:
    """The JSON log lines written at level info meanwhile; the logging set up before is put back."""
    import structlog

    from rotator import log

    saved, root = structlog.get_config(), logging.getLogger()
    handlers, level = root.handlers[:], root.level
    out = io.StringIO()
    lines: list[str] = []
    log.configure(level="info", stream=out)
    try:
        yield lines
    finally:
        structlog.configure(**saved)
        root.handlers[:] = handlers
        root.setLevel(level)
        lines.extend(line for line in out.getvalue().splitlines() if line.startswith("{"))


def faulted(world: World, kind: str) -> int:
    return len([r for r in world.requests() if r.get("fault") == kind and r["path"] == PATH])


@pytest.mark.parametrize("kind", ["500", "429"])
def test_promise_1_a_5xx_or_429_on_the_new_key_probe_is_no_refusal(world: World, kind: str) -> None:
    """Past probe_deadline a *refused* new key rolls the rotation back; a 5xx or a 429 says nothing
    about the key, so the probe is tried again and the key is kept."""
    app, engine, rotation = start(world)
    staged = step_until(engine, rotation, "staged")
    engine.clock = later(app, app.settings.engine.probe_deadline + timedelta(seconds=1))
    before = faulted(world, kind)
    world.faults(rules=[{"kind": kind, "method": "GET", "path": PATH, "times": 4}], retry_after=0)
    step = engine.advance(staged)
    assert faulted(world, kind) - before == 4  # every attempt of the probe met the fault
    assert step.rotation.state == "staged" and step.waiting_until is not None, step.note
    assert staged.new_key_id in world.live_ids()
    assert engine.advance(step.rotation).rotation.state == "probed"


@pytest.mark.parametrize("kind", ["500", "429"])
def test_promise_4_a_5xx_or_429_while_verifying_never_counts_as_refused(
    world: World, brandwave: str, kind: str
) -> None:
    """The old key is still accepted (the provider forgets it slowly); a 5xx or 429 on its probe is
    not the 401 that completes the rotation."""
    httpx.post(f"{brandwave}/_sandbox/config", json={"revocation_delay": 60}).raise_for_status()
    app, engine, rotation = start(world)
    verifying = step_until(engine, rotation, "verifying")
    world.faults(rules=[{"kind": kind, "method": "GET", "path": PATH, "times": 4}], retry_after=0)
    step = engine.advance(verifying)
    assert step.rotation.state == "verifying" and step.rotation.finished_at is None, step.note
    assert "rotation.completed" not in [e.event for e in app.db.events(rotation_id=rotation.id)]


@pytest.mark.parametrize("kind", ["404", "403", "400"])
def test_promise_4_only_a_401_on_the_old_key_completes_the_rotation(world: World, brandwave: str, kind: str) -> None:
    """A 404, 403 or 400 on the old key's probe says something else went wrong (a moved endpoint,
    a proxy, a bad request): the key is not proven dead, so the rotation neither completes nor
    forgets it, and past verify_deadline it is held, never completed."""
    httpx.post(f"{brandwave}/_sandbox/config", json={"revocation_delay": 600}).raise_for_status()
    app, engine, rotation = start(world)
    verifying = step_until(engine, rotation, "verifying")
    world.faults(rules=[{"kind": kind, "method": "GET", "path": PATH, "times": 2}], retry_after=0)
    step = engine.advance(verifying)
    assert faulted(world, kind) >= 1
    assert step.rotation.state != "completed" and step.rotation.finished_at is None, step.note
    engine.clock = later(app, app.settings.engine.verify_deadline + timedelta(seconds=1))
    step = engine.advance(app.db.get(rotation.id))
    assert step.rotation.state != "completed" and step.rotation.finished_at is None, step.note
    assert "rotation.completed" not in [e.event for e in app.db.events(rotation_id=rotation.id)]


def test_promise_4_retry_after_sets_the_delay_of_the_next_attempt(world: World, brandwave: str) -> None:
    """A 429 whose Retry-After (30 s) is beyond the client's cap goes back to the engine, which
    looks again no sooner than asked (a backoff of its own would be 0.1 s here)."""
    httpx.post(f"{brandwave}/_sandbox/config", json={"revocation_delay": 60}).raise_for_status()
    app, engine, rotation = start(world)
    verifying = step_until(engine, rotation, "verifying")
    world.faults(rules=[{"kind": "429", "method": "GET", "path": PATH}], retry_after=30)
    step = engine.advance(verifying)
    assert step.waiting_until is not None
    assert (step.waiting_until - app.db.clock()).total_seconds() >= 29, step.note
    assert app.db.get(rotation.id).next_attempt_at >= step.waiting_until - timedelta(seconds=1)


def _forget_proof(app: App, rotation: Rotation) -> Rotation:
    """As a database from before proofs existed left it: a rotation in flight with no recorded proof."""
    with app.db.engine.begin() as conn:
        conn.execute(text("UPDATE rotations SET old_key_proof = NULL WHERE id = :id"), {"id": rotation.id})
    return app.db.get(rotation.id)


def test_promise_9_the_late_proof_is_made_before_revoking(world: World) -> None:
    """A rotation with no recorded proof proves its old key at the revoke step, then revokes it."""
    app, engine, rotation = start(world)
    revoking = _forget_proof(app, step_until(engine, rotation, "revoking"))
    assert revoking.old_key_proof is None
    done = step_until(engine, revoking, "completed")
    assert done.old_key_proof and "brandwave" in done.old_key_proof
    events = [e.event for e in app.db.events(rotation_id=rotation.id)]
    assert events.index("old_key.proven") < events.index("key.revoked")


def test_promise_9_no_revoke_when_the_late_proof_fails(world: World, brandwave: str) -> None:
    """The late proof cannot be made (the stored old key is refused, so nothing shows it is
    `key_id`): nothing is revoked, and the rotation is held, not rolled back."""
    app, engine, rotation = start(world)
    revoking = _forget_proof(app, step_until(engine, rotation, "revoking"))
    httpx.post(f"{brandwave}/_sandbox/keys/{world.first['id']}/revoke").raise_for_status()
    step = engine.advance(revoking)
    assert step.held and step.rotation.state == "revoking"
    assert not [r for r in world.requests() if r["method"] == "DELETE" and world.first["id"] in r["path"]]
    assert "old_key.proven" not in [e.event for e in app.db.events(rotation_id=rotation.id)]


def test_promise_9_an_adoption_of_another_fingerprint_proves_nothing(world: World, brandwave: str) -> None:
    """An operator adopted key_id with the key stored then; the store now pairs that key_id with
    another user's key. The adoption does not cover it, the provider shows nothing, so the rotation
    fails before any create and the adopted key is left alone."""
    app, engine, rotation = start(world)
    app.db.audit(
        None,
        secret=world.name,
        actor="operator",
        event=ADOPTED,
        detail={"key_id": world.first["id"], "fingerprint": fingerprint(secret(world.first["token"]))},
    )
    other = httpx.post(
        f"{brandwave}/_sandbox/keys", json={"name": f"other-{world.name}", "account": f"acct-{uuid.uuid4().hex[:8]}"}
    ).json()
    value = {**world.current(), "api_key": other["secret"]}
    world.sm.put_secret_value(SecretId=world.secret_id, SecretString=json.dumps(value))
    done = step_until(engine, rotation, "failed")
    assert "key_id" in (done.failed_reason or "") or "not" in (done.failed_reason or ""), done.failed_reason
    assert done.new_key_id is None and done.create_started_at is None
    assert world.probe(world.first["token"]) == 200


def test_promise_9_an_adoption_of_the_stored_key_proves_it(world: World) -> None:
    """The same adoption, with the store unchanged, is the proof the rotation records."""
    app, engine, rotation = start(world)
    app.db.audit(
        None,
        secret=world.name,
        actor="operator",
        event=ADOPTED,
        detail={"key_id": world.first["id"], "fingerprint": fingerprint(secret(world.first["token"]))},
    )
    creating = step_until(engine, rotation, "creating")
    assert creating.old_key_proof == "adopted by operator"


def test_promise_1_an_abort_before_promotion_rolls_back_and_one_after_the_end_is_refused(world: World) -> None:
    """Aborted with its new key staged: the new key is revoked, the old one stays current and
    working; an ended rotation cannot be aborted again."""
    from rotator.engine import interventions
    from rotator.errors import RotationError

    _, engine, rotation = start(world)
    staged = step_until(engine, rotation, "staged")
    rolling = interventions.abort(engine, staged, why="wrong secret")
    assert rolling.state == "rolling_back" and "aborted by" in (rolling.failed_reason or "")
    failed = step_until(engine, rolling, "failed")
    assert world.current()["key_id"] == world.first["id"] and world.probe(world.first["token"]) == 200
    assert world.live_ids() == {world.first["id"]} and not world.pending_left()
    with pytest.raises(RotationError, match="already ended"):
        interventions.abort(engine, failed, why="again")


def test_promise_6_the_daemons_claim_advances_a_due_rotation_under_its_lease_and_lets_go(world: World) -> None:
    """Runner.advance_next, the daemon's turn: it claims the due rotation, runs its steps under the
    lease (told as each begins and ends), lets the lease go, and keeps a finished one out of `handled`."""
    app = world.app()
    runner = app.runner("daemon")
    rotation = app.db.create_rotation(
        secret=world.name, provider="bw", policy="fast", trigger="manual", reason="test", actor="test"
    )
    begun: list[str] = []
    ended: list[str] = []
    handled: set[str] = set()
    due_by = app.db.clock() + timedelta(seconds=1)
    done = runner.advance_next(
        due_by=due_by,
        urgent=["manual"],
        handled=handled,
        on_begin=lambda r: begun.append(r.state),
        on_step=lambda s: ended.append(s.step),
    )
    assert done is not None and done.id == rotation.id and done.state == "completed"
    assert begun[0] == "requested" and begun == ended and "revoking" in begun
    assert handled == set()  # finished: not passed over, simply gone
    assert runner.advance_next(due_by=due_by, handled=handled) is None
    app.db.acquire_lease(world.name, "otherhost:1:abcd", app.settings.engine.lease_ttl)  # let go: free to take


def test_promise_2_a_rollback_that_cannot_revoke_the_new_key_ends_failed_and_says_what_it_left(world: World) -> None:
    """The provider keeps failing the new key's revocation (5xx) past step_deadline: the rotation
    ends failed, the old key current, and records the new key as left alive (`rotator reconcile`
    and `leftovers` find it) instead of retrying for ever."""
    from rotator.engine import interventions

    app, engine, rotation = start(world)
    staged = step_until(engine, rotation, "staged")
    rolling = interventions.abort(engine, staged, why="test")
    world.faults(rules=[{"kind": "500", "method": "DELETE", "path": PATH, "times": 50}])
    first = engine.advance(rolling)
    assert first.rotation.state == "rolling_back" and first.waiting_until is not None  # temporary: retried
    engine.clock = later(app, app.settings.engine.step_deadline + timedelta(minutes=1))
    done = engine.advance(first.rotation).rotation
    assert done.state == "failed" and done.finished_at is not None
    assert "rollback incomplete" in (done.failed_reason or "") and "aborted by" in (done.failed_reason or "")
    assert world.current()["key_id"] == world.first["id"]
    left = app.db.leftovers(world.name)
    assert [(k.key_id, k.fingerprint) for k in left] == [(staged.new_key_id, staged.new_fingerprint)]
    failed = [e for e in app.db.events(rotation_id=rotation.id) if e.event == "rotation.failed"]
    assert (
        len(failed) == 1 and failed[0].detail["new_key_id"] == staged.new_key_id and failed[0].detail["cleanup_error"]
    )


def test_promise_2_a_rollback_that_cannot_list_after_a_failed_create_says_it_left_no_key(world: World) -> None:
    """The create keeps failing (5xx) past step_deadline, then so does the list that looks for a key
    it may have made: the rotation ends failed naming no new key nor pending version (none was
    made), and its `failed` notification gives the first failure as the reason, the cleanup error apart."""
    from sqlalchemy import select

    from rotator.state.schema import OutboxEntry

    world.config.write_text(world.config.read_text() + "notifications:\n  - {url: 'http://127.0.0.1:9/hook'}\n")
    app, engine, rotation = start(world)
    world.faults(rules=[{"kind": "500", "method": "POST", "path": PATH, "times": 50}])
    creating = step_until(engine, rotation, "creating")
    step = engine.advance(creating)
    assert step.rotation.state == "creating" and step.waiting_until is not None  # temporary: retried
    engine.clock = later(app, app.settings.engine.step_deadline + timedelta(minutes=1))
    rolling = engine.advance(step.rotation).rotation
    assert rolling.state == "rolling_back" and rolling.new_key_id is None and rolling.staged_at is None
    first_failure = rolling.failed_reason
    assert first_failure and "injected fault" in first_failure
    world.faults(rules=[{"kind": "500", "method": "GET", "path": PATH, "times": 50}])
    first = engine.advance(rolling).rotation
    engine.clock = later(app, 3 * app.settings.engine.step_deadline)
    with info_log() as lines:
        done = step_until(engine, first, "failed")
    assert "rollback incomplete" in (done.failed_reason or "")
    failed = [e.detail for e in app.db.events(rotation_id=rotation.id) if e.event == "rotation.failed"]
    assert len(failed) == 1 and set(failed[0]) == {"reason", "cleanup_error"}
    assert failed[0]["reason"] == first_failure and failed[0]["cleanup_error"]
    with app.db.session() as s:
        sent = [e.payload for e in s.scalars(select(OutboxEntry)) if e.kind == "failed"]
    assert len(sent) == 1 and sent[0]["reason"] == first_failure and sent[0]["rotation_id"] == rotation.id
    # the log line of the move names its rotation, so an operator can find it in `rotator history`
    moved = [r for r in map(json.loads, lines) if r.get("event") == "rotation.failed"]
    assert len(moved) == 1 and moved[0]["rotation_id"] == rotation.id and moved[0]["state"] == "failed"
    # its delivery thread would go on failing against port 9 into a later test's captured logs
    app.notifier.stop()


def test_promise_4_an_old_key_accepted_past_verify_deadline_holds_the_rotation_and_is_probed_again(
    world: World, brandwave: str
) -> None:
    """Past engine.verify_deadline the rotation is held (never completed) and keeps probing every
    verify_interval, not at the slower hold_interval."""
    httpx.post(f"{brandwave}/_sandbox/config", json={"revocation_delay": 60}).raise_for_status()
    app, engine, rotation = start(world)
    verifying = step_until(engine, rotation, "verifying")
    engine.clock = later(app, app.settings.engine.verify_deadline + timedelta(seconds=1))
    step = engine.advance(verifying)
    assert step.held and step.rotation.state == "verifying" and step.rotation.finished_at is None
    assert "still accepted" in (step.rotation.held_reason or "")
    assert step.waiting_until is not None
    assert step.waiting_until - engine.clock() <= app.settings.engine.verify_interval * 1.2
    assert app.settings.engine.verify_interval * 1.2 < app.settings.engine.hold_interval


def test_promise_8_every_event_of_a_turn_is_timed_by_the_engines_clock(world: World, brandwave: str) -> None:
    """The engine's clock (the database's, SPEC §8) runs an hour ahead of this host's: the audit
    events that move nothing (here: waiting for the old key to be refused) carry that clock as
    the moves do, so history never runs backwards."""
    httpx.post(f"{brandwave}/_sandbox/config", json={"revocation_delay": 30.0}).raise_for_status()
    app, engine, rotation = start(world)
    engine.clock = later(app, timedelta(hours=1))
    verifying = step_until(engine, rotation, "verifying")
    assert engine.advance(verifying).rotation.state == "verifying"  # the old key is still accepted
    events = app.db.events(rotation_id=rotation.id)
    waiting = [e for e in events if e.event == "waiting" and "still accepted" in e.detail["for"]]
    revoked = [e for e in events if e.event == "key.revoked"]
    assert len(waiting) == 1 and len(revoked) == 1
    assert waiting[0].at >= revoked[0].at
    times = [e.at for e in events]
    assert times == sorted(times)
