"""Replicas share due rotations by claiming them from the state database (StateDB.claim_due):
the most urgent first, never one another holds, never the same one twice at once, and a provider
instance's concurrency limit held across all claimers together. On SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

from sqlalchemy import update

from rotator.state.clock import utcnow
from rotator.state.db import StateDB
from rotator.state.schema import Rotation

TTL = timedelta(minutes=1)
URGENT = ("incident", "offboarding")


def due(
    db: StateDB,
    secret: str,
    *,
    trigger: str = "policy",
    policy: str = "quarterly",
    minutes_ago: int = 0,
    provider: str = "bw",
) -> str:
    rotation = db.create_rotation(
        secret=secret, provider=provider, policy=policy, trigger=trigger, reason="test", actor="t"
    )
    with db.session() as s:
        s.execute(
            update(Rotation)
            .where(Rotation.id == rotation.id)
            .values(next_attempt_at=utcnow() - timedelta(minutes=minutes_ago))
        )
    return rotation.id


def test_claims_the_most_urgent_first_then_the_longest_due_and_passes_over_what_is_held(
    empty_state_url: str,
) -> None:
    db = StateDB(empty_state_url)
    ids = {
        "scheduled-old": due(db, "a", minutes_ago=600),
        "incident-new": due(db, "b", trigger="incident", policy="incident", minutes_ago=0),
        "escalated": due(db, "c", policy="offboarding", minutes_ago=1),
        "scheduled": due(db, "d", minutes_ago=5),
        "incident-older": due(db, "e", trigger="incident", policy="incident", minutes_ago=2),
        "held-elsewhere": due(db, "f", trigger="incident", minutes_ago=900),
    }
    name = {v: k for k, v in ids.items()}
    db.acquire_lease("f", "otherhost:1:x:boot:ns:1", TTL)  # a live replica elsewhere holds it
    handled: set[str] = set()
    order = []
    while claimed := db.claim_due("me:2:y:boot:ns:2", TTL, due_by=utcnow(), urgent=URGENT, skip=handled):
        generation, rotation = claimed
        assert generation >= 1 and rotation.id not in handled
        handled.add(rotation.id)
        order.append(name[rotation.id])
    assert order == ["incident-older", "escalated", "incident-new", "scheduled-old", "scheduled"]


def test_a_rotation_not_due_yet_is_not_claimed(empty_state_url: str) -> None:
    db = StateDB(empty_state_url)
    rotation_id = due(db, "a", minutes_ago=-10)
    assert db.claim_due("me:1:x", TTL, due_by=utcnow(), skip=set()) is None
    claimed = db.claim_due("me:1:x", TTL, due_by=utcnow() + timedelta(minutes=11), skip=set())
    assert claimed is not None and claimed[1].id == rotation_id


def test_two_claimers_at_once_split_the_work_and_never_hold_the_same_rotation(empty_state_url: str) -> None:
    """Two replicas (two StateDB objects, as two processes would have) claim until nothing is left;
    a claimed rotation stays held for a while as a step would. Each rotation is claimed once."""
    setup = StateDB(empty_state_url)
    wanted = {due(setup, f"s{i}") for i in range(40)}
    claims: dict[str, list[str]] = {"one": [], "two": []}
    errors: list[BaseException] = []

    def replica(name: str) -> None:
        try:
            db, owner = StateDB(empty_state_url), f"host-{name}:1:{name}"
            while (claimed := db.claim_due(owner, TTL, due_by=utcnow(), skip=set())) is not None:
                claims[name].append(claimed[1].id)
                time.sleep(0.01)  # the step; the lease is kept (not released) so nobody may take it
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=replica, args=(name,)) for name in claims]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    everything = claims["one"] + claims["two"]
    assert sorted(everything) == sorted(wanted)  # each exactly once
    assert claims["one"] and claims["two"], claims


def test_a_providers_concurrency_limit_holds_across_claimers(empty_state_url: str) -> None:
    """max_concurrent 2 for `slow`: with two of its rotations under lease (by two replicas), a third
    claimer gets another provider's rotation, then nothing, until one lease is let go."""
    setup = StateDB(empty_state_url)
    for i in range(4):
        due(setup, f"slow-{i}", provider="slow", minutes_ago=10)
    other = due(setup, "fast-0", provider="fast", minutes_ago=1)
    limits = {"slow": 2}
    first, second, third = (StateDB(empty_state_url) for _ in range(3))
    a = first.claim_due("a:1:a", TTL, due_by=utcnow(), limits=limits, skip=set())
    b = second.claim_due("b:1:b", TTL, due_by=utcnow(), limits=limits, skip=set())
    assert a is not None and b is not None and {a[1].provider, b[1].provider} == {"slow"}
    c = third.claim_due("c:1:c", TTL, due_by=utcnow(), limits=limits, skip=set())
    assert c is not None and c[1].id == other
    assert third.claim_due("c:1:c", TTL, due_by=utcnow(), limits=limits, skip={other}) is None
    first.release_lease(a[1].secret, "a:1:a")
    d = third.claim_due("c:1:c", TTL, due_by=utcnow(), limits=limits, skip={other, a[1].id})
    assert d is not None and d[1].provider == "slow" and d[1].id not in (a[1].id, b[1].id)


def test_replicas_count_each_other_by_heartbeat_and_a_silent_one_stops_counting(empty_state_url: str) -> None:
    one, two = StateDB(empty_state_url), StateDB(empty_state_url)
    assert one.heartbeat("host-a:1:a", TTL) == 1
    assert two.heartbeat("host-b:2:b", timedelta(milliseconds=300)) == 2
    assert one.heartbeat("host-a:1:a", TTL) == 2  # renewing is not counting twice
    time.sleep(0.5)
    assert one.heartbeat("host-a:1:a", TTL) == 1  # b went silent: its heartbeat expired
    two.heartbeat("host-b:2:b", TTL)
    two.farewell("host-b:2:b")
    assert one.heartbeat("host-a:1:a", TTL) == 1  # b stopped and said so


def test_a_rotation_whose_holder_lost_its_lease_mid_step_is_taken_over_before_anything_else(
    empty_state_url: str,
) -> None:
    """A replica died holding a lease (it ran out with its owner on it): that rotation stands half
    done and is claimed first — before incidents, and before rotations due far longer — while a
    rotation whose lease was let go at the end of a step waits its turn like any other."""
    db = StateDB(empty_state_url)
    backlog = [due(db, f"backlog-{i}", trigger="incident", policy="incident", minutes_ago=60 + i) for i in range(5)]
    let_go = due(db, "let-go", minutes_ago=600)
    db.acquire_lease("let-go", "otherhost:1:x:boot:ns:1", TTL)
    db.release_lease("let-go", "otherhost:1:x:boot:ns:1")
    abandoned = due(db, "abandoned", minutes_ago=0)
    db.acquire_lease("abandoned", "deadhost:1:x:boot:ns:1", timedelta(seconds=-1))  # ran out, never let go
    first = db.claim_due("me:2:y:boot:ns:2", TTL, due_by=utcnow(), urgent=URGENT, skip=set())
    assert first is not None and first[1].id == abandoned
    assert backlog and let_go
