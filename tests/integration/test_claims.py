"""Replicas share due rotations by claiming them from the state database (StateDB.claim_due):
the most urgent first, never one another holds, never the same one twice at once, and a provider
instance's concurrency limit held across all claimers together. On SQLite and PostgreSQL."""

from __future__ import annotations

import math
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import update

from rotator.daemon.replicas import Replicas
from rotator.runtime import ratelimit
from rotator.runtime.ratelimit import Limit, Window
from rotator.runtime.sharing import RESERVE
from rotator.state.clock import utcnow
from rotator.state.db import StateDB
from rotator.state.schema import Rotation
from tests.support.pg_locks import in_thread, waiting

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
    assert one.heartbeat("host-a:1:a", TTL) == (1, 1)
    assert two.heartbeat("host-b:2:b", timedelta(milliseconds=300)) == (2, 2)
    assert one.heartbeat("host-a:1:a", TTL) == (2, 2)  # renewing is not counting twice
    time.sleep(0.5)
    assert one.heartbeat("host-a:1:a", TTL) == (1, 1)  # b went silent: its heartbeat expired
    two.heartbeat("host-b:2:b", TTL)
    two.farewell("host-b:2:b")
    assert one.heartbeat("host-a:1:a", TTL) == (1, 1)  # b stopped and said so


def test_replicas_say_whether_they_are_idle_and_the_busy_ones_are_counted(empty_state_url: str) -> None:
    """What splits the rate limits (runtime/sharing.py): a replica that says it is idle leaves the
    busy ones its part until it says otherwise, stops, or goes silent; one that never says (a
    replica from before 0.9) counts as busy."""
    one, two, three = StateDB(empty_state_url), StateDB(empty_state_url), StateDB(empty_state_url)
    assert one.heartbeat("host-a:1:a", TTL, idle=True) == (1, 0)
    assert two.heartbeat("host-b:2:b", TTL) == (2, 1)
    assert two.heartbeat("host-b:2:b", TTL, idle=True) == (2, 0)
    assert one.heartbeat("host-a:1:a", TTL, idle=False) == (2, 1)  # a got work
    assert two.heartbeat("host-b:2:b", TTL, idle=True) == (2, 1)
    assert two.heartbeat("host-b:2:b", TTL, idle=False) == (2, 2)  # b too
    assert two.heartbeat("host-b:2:b", TTL, idle=True) == (2, 1)  # and b is done
    assert three.heartbeat("host-c:3:c", timedelta(milliseconds=300), idle=True) == (3, 1)
    time.sleep(0.5)
    assert one.heartbeat("host-a:1:a", TTL) == (2, 1)  # c went silent: neither alive nor idle
    two.farewell("host-b:2:b")
    assert one.heartbeat("host-a:1:a", TTL) == (1, 1)
    assert two.heartbeat("host-b:2:b", TTL) == (2, 2)  # b back, busy: its old idle mark went with it
    assert one.replicas_alive() == 2


def test_a_daemon_that_wanted_to_send_says_so_and_keeps_its_part_until_it_leaves(
    empty_state_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ratelimit, "_wanted_at", -math.inf)  # what earlier tests in this process sent
    other = StateDB(empty_state_url)
    other.heartbeat("host-z:9:z", TTL, idle=True)
    db, replicas = StateDB(empty_state_url), Replicas()
    replicas.join()
    try:
        replicas.beat(db)
        assert (replicas.alive, replicas.busy, replicas.sharing.part) == (2, 0, RESERVE / 4)
        Window(Limit(50, timedelta(seconds=1))).take()
        replicas.beat(db)
        assert (replicas.alive, replicas.busy, replicas.sharing.part) == (2, 1, 1 - RESERVE)
        assert other.heartbeat("host-z:9:z", TTL, idle=True) == (2, 1)
    finally:
        replicas.leave(db)
    assert other.heartbeat("host-z:9:z", TTL, idle=True) == (1, 0)
    assert ratelimit._sharing is None  # a command run by hand afterwards has the whole of each limit


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


def test_a_provider_at_its_limit_with_a_long_backlog_does_not_starve_another_provider(
    empty_state_url: str,
) -> None:
    """`slow` is at its max_concurrent with ten rotations due for hours, more than one claim looks
    at: the claim passes over the whole provider and takes the other provider's rotation due now."""
    setup = StateDB(empty_state_url)
    due(setup, "slow-held", provider="slow", minutes_ago=900)
    setup.acquire_lease("slow-held", "otherhost:1:x:boot:ns:1", TTL)  # slow: 1 of 1 under lease
    for i in range(10):
        due(setup, f"slow-{i}", provider="slow", minutes_ago=600 + i)
    other = due(setup, "fast-0", provider="fast", minutes_ago=0)
    claimed = StateDB(empty_state_url).claim_due("me:2:y", TTL, due_by=utcnow(), limits={"slow": 1}, skip=set())
    assert claimed is not None and claimed[1].id == other


def test_a_rotation_held_by_a_provably_dead_process_of_this_host_is_claimed_at_once(empty_state_url: str) -> None:
    """A daemon restarted on the same host: the lease its dead predecessor held runs for an hour
    still, yet the rotation is claimed now (a higher generation), not an hour later."""
    import socket
    import subprocess
    import sys

    from rotator.state.identity import _boot_id, _pid_namespace, _start_time

    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    started = _start_time(process.pid)
    process.kill()
    process.wait()
    dead = f"{socket.gethostname()}:{process.pid}:dead:{_boot_id()}:{_pid_namespace()}:{started}"
    db = StateDB(empty_state_url)
    rotation_id = due(db, "orphaned", minutes_ago=1)
    generation = db.acquire_lease("orphaned", dead, timedelta(hours=1))
    claimed = db.claim_due("me:2:y:boot:ns:2", TTL, due_by=utcnow(), skip=set())
    assert claimed is not None and claimed[1].id == rotation_id and claimed[0] == generation + 1


def test_status_counts_the_replicas_alive_and_nothing_else(empty_state_url: str) -> None:
    """`rotator status` reports how many daemons are alive (StateDB.replicas_alive): each live
    heartbeat once, not a secret's lease, not a heartbeat that expired or a replica that said farewell."""
    db = StateDB(empty_state_url)
    assert db.replicas_alive() == 0
    db.heartbeat("host-a:1:a", TTL)
    db.heartbeat("host-b:2:b", TTL)
    db.heartbeat("host-c:3:c", timedelta(seconds=-1))  # went silent long ago
    due(db, "busy")
    db.acquire_lease("busy", "host-a:1:a", TTL)  # a rotation under lease is no daemon
    assert db.replicas_alive() == 2
    db.farewell("host-b:2:b")
    assert db.replicas_alive() == 1


def _wait_for(condition: Any, what: str) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.05)


def _while_another_holds(url: str, statements: list[str], act: Any, lock: str) -> dict[str, Any]:
    """`act()` in a thread while another connection has run `statements` and not committed: once
    `act` waits on that connection's lock (`lock`: pg_locks' locktype), the other commits. The
    outcome: {"value": ...} or {"error": ...}."""
    import sqlalchemy
    from sqlalchemy import text

    other = sqlalchemy.create_engine(url)
    try:
        with other.connect() as holder:
            for statement in statements:
                holder.execute(text(statement))
            thread, outcome = in_thread(act)
            _wait_for(lambda: waiting(other, lock) or not thread.is_alive(), f"a wait on the {lock} lock")
            holder.commit()
        thread.join(30)
    finally:
        other.dispose()
    return outcome


def test_a_providers_limit_holds_against_a_claim_made_while_this_one_waited_its_turn(own_postgres_url: str) -> None:
    """max_concurrent 2 for `slow`, one under lease: another replica takes a second while this
    claim has counted one and waits for the provider's lock; once it has the lock it counts again
    and takes nothing of `slow` — never a third at once."""
    from sqlalchemy import text

    url = own_postgres_url
    setup = StateDB(url)
    due(setup, "slow-a", provider="slow", minutes_ago=30)
    setup.acquire_lease("slow-a", "host-a:1:a", TTL)
    due(setup, "slow-b", provider="slow", minutes_ago=20)
    due(setup, "slow-c", provider="slow", minutes_ago=10)
    claimer = StateDB(url)
    # another replica's claim of slow-c, not committed yet
    outcome = _while_another_holds(
        url,
        [
            "SELECT pg_advisory_xact_lock(74061, hashtext('slow'))",
            "INSERT INTO leases (secret, owner, expires_at, generation)"
            " VALUES ('slow-c', 'host-c:3:c', clock_timestamp() + interval '1 minute', 1)",
        ],
        lambda: claimer.claim_due("me:2:y", TTL, due_by=utcnow(), limits={"slow": 2}, skip=set()),
        "advisory",
    )
    assert "error" not in outcome, outcome
    assert outcome["value"] is None, outcome  # slow-b would be the third of `slow` under lease
    with setup.session() as s:
        held = s.execute(
            text("SELECT count(*) FROM leases WHERE secret LIKE 'slow-%' AND expires_at > clock_timestamp()")
        ).scalar()
    assert held == 2


def test_two_first_takers_of_a_lease_at_once_the_second_is_told_who_holds_it(own_postgres_url: str) -> None:
    """No lease row yet, and two processes take it at the same moment: the one whose insert lost
    the race is told the secret is held, and by whom — not an error of the database."""

    from rotator.errors import LeaseHeld

    url = own_postgres_url
    db = StateDB(url)
    db.replicas_alive()  # the schema is made
    # the first taker's insert, not committed yet
    outcome = _while_another_holds(
        url,
        [
            "INSERT INTO leases (secret, owner, expires_at, generation)"
            " VALUES ('fresh', 'host-b:2:b', clock_timestamp() + interval '1 minute', 1)"
        ],
        lambda: db.acquire_lease("fresh", "host-a:1:a", TTL),
        "transactionid",
    )
    error = outcome.get("error")
    assert isinstance(error, LeaseHeld) and "host-b:2:b" in str(error), outcome


def test_promise_6_a_lease_runs_by_the_databases_clock_not_a_skewed_hosts(
    own_postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A replica whose wall clock is an hour behind takes a lease for a minute: on PostgreSQL it
    runs a minute by the database's clock, so another replica cannot take it at once."""
    from rotator.errors import LeaseHeld
    from rotator.state import connection

    db = StateDB(own_postgres_url)
    with monkeypatch.context() as skewed:
        skewed.setattr(connection, "utcnow", lambda: datetime.now(UTC) - timedelta(hours=1))
        db.acquire_lease("s", "slow-clock:1:a", TTL)
    with pytest.raises(LeaseHeld, match="slow-clock"):
        StateDB(own_postgres_url).acquire_lease("s", "host-b:2:b", TTL)
