"""Whole rotations in-process, over real HTTP: the sandbox and a moto server."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DatabaseError

from rotator.app import App
from rotator.errors import LeaseHeld
from rotator.providers.brandwave import PATH
from rotator.state.schema import Rotation
from tests.support.world import World

HAPPY_EVENTS = [
    "requested",
    "rotation.started",
    "key.created",
    "key.probed",
    "key.promoted",
    "cutover.started",
    "cutover.open",
    "key.revoked",
    "rotation.completed",
]


def rotate(world: World, app: App | None = None, policy: str | None = None) -> Rotation:
    app = app or world.app()
    rotation = app.db.create_rotation(
        secret=world.name,
        provider="bw",
        policy=policy or "fast",
        trigger="manual",
        reason="test",
        actor="test",
    )
    return app.runner("test").run(rotation.id, follow=True)


def test_full_rotation(world: World) -> None:
    """One live token remains (the new one); AWSCURRENT holds it, AWSPREVIOUS the old; the audit lists every step."""
    app = world.app()
    done = rotate(world, app)
    assert done.state == "completed"
    new = world.current()
    assert new["key_id"] == done.new_key_id and new["rotation_id"] == done.id and new["provider"] == "brandwave"
    assert world.previous()["key_id"] == world.first["id"]
    assert world.live_ids() == {done.new_key_id}
    assert world.probe(new["api_key"]) == 200 and world.probe(world.first["token"]) == 401
    assert not world.pending_left()
    events = [e.event for e in app.db.events(rotation_id=done.id)]
    assert [e for e in events if e in HAPPY_EVENTS] == HAPPY_EVENTS
    first = app.db.events(rotation_id=done.id)[0]
    assert first.actor == "test" and first.detail["reason"] == "test" and first.detail["trigger"] == "manual"


def test_no_outage_while_rotating(world: World) -> None:
    """An application reading AWSCURRENT and calling the provider with it never gets a 401."""
    (world.dir / "policies" / "main.yaml").write_text(
        (world.dir / "policies" / "main.yaml").read_text().replace("min_soak: 0s", "min_soak: 1s")
    )
    statuses: list[int] = []
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            statuses.append(world.probe(world.current()["api_key"]))

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        done = rotate(world)
        time.sleep(0.3)
    finally:
        stop.set()
        poller.join()
    assert done.state == "completed"
    assert len(statuses) >= 5 and set(statuses) == {200}  # it ran throughout (fewer polls on a slow machine)


def test_a_timed_out_create_is_not_duplicated(world: World) -> None:
    """The create answers too late; the engine lists, discards the key whose secret it never saw, and ends with one."""
    world.faults(rules=[{"kind": "timeout_after", "method": "POST", "path": PATH, "seconds": 3}])
    app = world.app()
    done = rotate(world, app)
    assert done.state == "completed"
    assert world.live_ids() == {done.new_key_id}
    creates = [r for r in world.requests() if r["method"] == "POST" and r["path"] == PATH]
    named = [t for t in world.tokens() if t["name"] == f"rotator-{done.id}"]
    assert len(named) == 2 and len([t for t in named if not t["revoked"]]) == 1
    assert len(creates) >= 2
    discarded = [e.detail for e in app.db.events(rotation_id=done.id) if e.event == "key.discarded"]
    lost = next(t["id"] for t in named if t["revoked"])
    assert discarded == [{"key_id": lost, "why": "created, but its secret never reached us"}]  # history says why


def test_probe_failure_rolls_back(world: World, brandwave: str) -> None:
    """New key refused: it is revoked, pending is cleared, the old key stays current and working."""
    import httpx

    httpx.post(f"{brandwave}/_sandbox/config", json={"refuse_new_keys": True})
    done = rotate(world)
    assert done.state == "failed" and "refused" in (done.failed_reason or "")
    assert world.current()["key_id"] == world.first["id"]
    assert world.probe(world.first["token"]) == 200
    assert not world.pending_left()
    assert world.live_ids() == {world.first["id"]}


@pytest.mark.parametrize("kinds", [["429"], ["500", "503"], ["timeout"]])
def test_faults_are_ridden_out(world: World, kinds: list[str]) -> None:
    """429 with Retry-After, 5xx and timeouts on 30% of requests: the rotation still completes or rolls back."""
    world.faults(rate=0.3, kinds=kinds, seed=7, hang_seconds=1.5)
    done = rotate(world)
    world.faults(clear=True)
    assert done.state in ("completed", "failed")
    working = world.current()["api_key"]
    assert world.probe(working) == 200
    if done.state == "completed":
        assert world.live_ids() == {done.new_key_id}
    else:
        assert world.live_ids() == {world.first["id"]}


def test_one_writer_per_secret(world: World) -> None:
    app = world.app()
    rotation = app.db.create_rotation(
        secret=world.name, provider="bw", policy="fast", trigger="manual", reason="", actor="test"
    )
    app.db.acquire_lease(world.name, "otherhost:1:abc", app.settings.engine.lease_ttl)
    with pytest.raises(LeaseHeld, match="otherhost:1:abc"):
        app.runner("test").run(rotation.id, follow=False)
    assert app.db.get(rotation.id).state == "requested"


def test_a_second_rotation_of_the_same_secret_is_refused_while_one_is_in_flight(world: World) -> None:
    from rotator.errors import ActiveRotationExists

    app = world.app()
    first = app.db.create_rotation(
        secret=world.name, provider="bw", policy="fast", trigger="manual", reason="", actor="test"
    )
    with pytest.raises(ActiveRotationExists) as exc:
        app.db.create_rotation(
            secret=world.name, provider="bw", policy="fast", trigger="manual", reason="", actor="test"
        )
    assert exc.value.rotation_id == first.id


def test_audit_trail_is_append_only(world: World) -> None:
    app = world.app()
    rotate(world, app)
    with pytest.raises(DatabaseError, match="append-only"), app.db.engine.begin() as conn:
        conn.execute(text("UPDATE audit_events SET actor = 'mallory'"))
    with pytest.raises(DatabaseError, match="append-only"), app.db.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_events"))


def test_no_key_material_in_the_state_database(world: World) -> None:
    done = rotate(world)
    blob = b"".join(p.read_bytes() for p in world.dir.glob("state.db*"))
    assert done.state == "completed"
    assert world.first["token"].encode() not in blob
    assert world.current()["api_key"].encode() not in blob


def test_cutover_gate_holds_when_a_required_signal_is_unavailable(world: World) -> None:
    """With `require: [consumers]` and no consumer declared, the old key is never revoked on its own."""
    policy = world.dir / "policies" / "main.yaml"
    policy.write_text(
        policy.read_text().replace(
            "cutover: {min_soak: 0s}", "cutover: {min_soak: 0s, require: [consumers], max_wait: 1s}"
        )
    )
    app = world.app()
    done = rotate(world, app)
    assert done.state == "cutover_wait" and done.held_reason and "consumers: unavailable" in done.held_reason
    assert world.probe(world.first["token"]) == 200
    assert world.current()["key_id"] == done.new_key_id


def test_full_rotation_with_postgresql_state(world: World, postgres_url: str) -> None:
    """The engine runs unchanged on PostgreSQL, the state backend for several replicas."""
    config = world.config.read_text().replace(f"sqlite:///{world.dir}/state.db", postgres_url)
    world.config.write_text(config)
    done = rotate(world)
    assert done.state == "completed" and world.live_ids() == {done.new_key_id}


def test_a_missing_secret_fails_cleanly(world: World) -> None:
    """A secret that does not exist in the store fails at the start and changes nothing at the provider."""
    world.sm.delete_secret(SecretId=world.secret_id, ForceDeleteWithoutRecovery=True)
    done = rotate(world)
    assert done.state == "failed" and "no current key" in (done.failed_reason or "")
    assert world.live_ids() == {world.first["id"]}


def test_verify_probes_the_old_key_until_the_provider_refuses_it(world: World, brandwave: str) -> None:
    """The provider takes a while to forget a revoked key: the rotation completes only once the old key is refused."""
    import httpx

    httpx.post(f"{brandwave}/_sandbox/config", json={"revocation_delay": 1.0}).raise_for_status()
    done = rotate(world)
    assert done.state == "completed"
    assert world.probe(world.first["token"]) == 401
    assert done.revoked_at is not None and done.finished_at is not None
    assert (done.finished_at - done.revoked_at).total_seconds() >= 0.9
    waits = [e.detail.get("for", "") for e in world.app().db.events(rotation_id=done.id) if e.event == "waiting"]
    assert any("still accepted; probing until refused" in w for w in waits)


def test_promise_8_the_audit_trail_names_the_key_each_step_made_and_revoked(world: World) -> None:
    """History says which key was created (its id and fingerprint, as stored) and which was revoked."""
    app = world.app()
    done = rotate(world, app)
    assert done.state == "completed"
    events = {e.event: e.detail for e in app.db.events(rotation_id=done.id)}
    assert events["key.created"] == {"key_id": done.new_key_id, "fingerprint": done.new_fingerprint}
    assert done.new_key_id == world.current()["key_id"]
    assert events["key.revoked"] == {"key_id": world.first["id"]}


def test_promise_8_a_rollback_says_which_step_failed_and_which_new_key_it_revoked(world: World, brandwave: str) -> None:
    """The new key is refused past probe_deadline: history names the step that failed and why, and
    the rollback ends the rotation as failed at once, naming the new key it revoked and leaving none alive."""
    import httpx

    httpx.post(f"{brandwave}/_sandbox/config", json={"refuse_new_keys": True})
    app = world.app()
    done = rotate(world, app)
    assert done.state == "failed"
    events = app.db.events(rotation_id=done.id)
    failed_step = [e.detail for e in events if e.event == "step.failed"]
    assert len(failed_step) == 1 and failed_step[0]["step"] == "staged" and "refused" in failed_step[0]["error"]
    ended = [e for e in events if e.event == "rotation.failed"]
    assert len(ended) == 1 and ended[0].from_state == "rolling_back" and ended[0].to_state == "failed"
    assert ended[0].detail["revoked_new_keys"] == [done.new_key_id]
    assert app.db.leftovers(world.name) == []


def test_promise_6_a_followed_rotation_waits_out_another_writer_and_then_goes_on(world: World) -> None:
    """`rotator rotate` finds the secret's lease taken by another process: it says so, waits, and
    completes the rotation once that process has let the lease go."""
    app = world.app()
    rotation = app.db.create_rotation(
        secret=world.name, provider="bw", policy="fast", trigger="manual", reason="", actor="test"
    )
    app.db.acquire_lease(world.name, "otherhost:1:abc", app.settings.engine.lease_ttl)
    blocked: list[str] = []

    def on_blocked(why: str) -> None:
        blocked.append(why)
        app.db.release_lease(world.name, "otherhost:1:abc")  # the other writer's step ends

    done = app.runner("test").run(rotation.id, follow=True, on_blocked=on_blocked)
    assert done.state == "completed"
    assert len(blocked) == 1 and "otherhost:1:abc" in blocked[0]
