"""One way to ask for a rotation (engine/requests.py): a rotation under way is put under another
policy, or looked at now, only under its lease — a holder mid-step is waited for, never written
beside — and one that ended meanwhile gives way to a new one."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest

from rotator.engine import requests
from rotator.errors import ActiveRotationExists, LeaseHeld
from tests.support.world import World

TTL = timedelta(minutes=1)
HOLDER = "otherhost:1:x:boot:ns:1"  # a live replica elsewhere, mid-step


def _ask(
    world: World,
    policy: str | None,
    *,
    wait: timedelta = timedelta(0),
    look_now: bool = False,
    waiting: threading.Event | None = None,
) -> tuple:
    """`waiting` is set when the request first waits for a lease (a test knows it is under way)."""
    runner = world.app().runner("cli:test")
    if waiting is not None:
        pause = runner.sleep
        runner.sleep = lambda seconds: (waiting.set(), pause(seconds))
    return requests.start_or_escalate(
        runner,
        secret=world.name,
        provider="bw",
        policy=policy,
        default_policy="fast",
        trigger="incident",
        reason="INC-1",
        actor="cli:test",
        look_now=look_now,
        wait=wait,
    )


def test_a_new_rotation_takes_the_asked_policy_else_the_secrets_own(world: World) -> None:
    rotation, new = _ask(world, None)
    assert new and rotation.policy == "fast" and rotation.state == "requested"
    again, new = _ask(world, None)
    assert not new and again.id == rotation.id and again.policy == "fast"


def test_escalating_a_rotation_whose_lease_is_held_changes_nothing_until_it_is_let_go(world: World) -> None:
    db = world.app().db
    running = db.create_rotation(
        secret=world.name, provider="bw", policy="fast", trigger="policy", reason="due", actor="daemon"
    )
    db.acquire_lease(world.name, HOLDER, TTL)
    with pytest.raises(LeaseHeld):
        _ask(world, "incident")
    assert db.get(running.id).policy == "fast"
    assert "policy.escalated" not in [e.event for e in db.events(rotation_id=running.id)]

    done: list[tuple] = []
    waiter = threading.Thread(target=lambda: done.append(_ask(world, "incident", wait=timedelta(seconds=60))))
    waiter.start()
    waiter.join(timeout=1.5)
    assert waiter.is_alive() and db.get(running.id).policy == "fast"  # still waiting for the holder
    db.release_lease(world.name, HOLDER)
    waiter.join(timeout=30)
    ((escalated, new),) = done
    assert not new and escalated.id == running.id and db.get(running.id).policy == "incident"
    (event,) = [e for e in db.events(rotation_id=running.id) if e.event == "policy.escalated"]
    assert event.actor == "cli:test"
    assert event.detail == {"from": "fast", "to": "incident", "trigger": "incident", "reason": "INC-1"}


def test_looking_now_brings_the_next_attempt_forward_under_the_lease(world: World) -> None:
    db = world.app().db
    running = db.create_rotation(
        secret=world.name, provider="bw", policy="fast", trigger="policy", reason="due", actor="daemon"
    )
    later = db.clock() + timedelta(hours=3)
    db.update(running, actor="t", next_attempt_at=later)
    rotation, new = _ask(world, None, look_now=True)
    assert not new and rotation.policy == "fast"
    assert db.get(running.id).next_attempt_at < later - timedelta(hours=2)
    assert db.acquire_lease(world.name, HOLDER, TTL) >= 1  # let go after the change


def test_a_rotation_that_ended_while_the_lease_was_waited_for_gives_way_to_a_new_one(world: World) -> None:
    db = world.app().db
    running = db.create_rotation(
        secret=world.name, provider="bw", policy="fast", trigger="policy", reason="due", actor="daemon"
    )
    db.acquire_lease(world.name, HOLDER, TTL)
    done: list[tuple] = []
    waiting = threading.Event()

    def ask() -> None:
        done.append(_ask(world, "incident", wait=timedelta(seconds=60), waiting=waiting))

    waiter = threading.Thread(target=ask)
    waiter.start()
    assert waiting.wait(timeout=60)  # it found the rotation under way and waits for its lease
    db.update(running, actor="daemon", state="failed", failed_reason="ended meanwhile", finished_at=db.clock())
    db.release_lease(world.name, HOLDER)
    waiter.join(timeout=30)
    ((rotation, new),) = done
    assert new and rotation.id != running.id and rotation.policy == "incident"
    assert db.get(running.id).policy == "fast"  # an ended rotation is never changed


def test_a_rotation_that_ended_between_the_look_and_the_lease_gives_way_to_a_new_one(world: World) -> None:
    """The holder finishes just after the request saw its rotation under way and just before the
    request takes the lease: what it reads under the lease has ended, so it starts a new one."""
    db = world.app().db
    running = db.create_rotation(
        secret=world.name, provider="bw", policy="fast", trigger="policy", reason="due", actor="daemon"
    )
    db.acquire_lease(world.name, HOLDER, TTL)
    runner = world.app().runner("cli:test")
    look = runner.db.create_rotation

    def look_then_the_holder_finishes(**fields: Any) -> Any:
        try:
            return look(**fields)
        except ActiveRotationExists:
            if db.get(running.id).state != "failed":
                db.update(running, actor="daemon", state="failed", failed_reason="ended", finished_at=db.clock())
                db.release_lease(world.name, HOLDER)
            raise

    runner.db.create_rotation = look_then_the_holder_finishes  # type: ignore[method-assign]
    rotation, new = requests.start_or_escalate(
        runner,
        secret=world.name,
        provider="bw",
        policy="incident",
        default_policy="fast",
        trigger="incident",
        reason="INC-1",
        actor="cli:test",
    )
    assert new and rotation.id != running.id and rotation.policy == "incident"
    assert db.get(running.id).policy == "fast" and db.get(running.id).state == "failed"
