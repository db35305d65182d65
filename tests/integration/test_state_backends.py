"""The state layer on every backend it supports: SQLite (embedded default) and PostgreSQL (replicas)."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DatabaseError

from rotator.engine.journal import Journal
from rotator.errors import ActiveRotationExists, LeaseHeld
from rotator.state import connection as state_connection
from rotator.state.db import StateDB


@pytest.fixture
def db(state_url: str) -> StateDB:
    return StateDB(state_url)


def new(db: StateDB, secret: str) -> str:
    return db.create_rotation(secret=secret, provider="bw", policy="p", trigger="manual", reason="r", actor="t").id


def test_one_rotation_in_flight_per_secret(db: StateDB) -> None:
    secret = f"s-{uuid.uuid4().hex}"
    first = new(db, secret)
    with pytest.raises(ActiveRotationExists):
        new(db, secret)
    db.update(db.get(first), actor="t", event="rotation.failed", state="failed")
    assert new(db, secret) != first


def test_lease_excludes_a_second_owner_until_released_or_expired(db: StateDB) -> None:
    secret = f"s-{uuid.uuid4().hex}"
    db.acquire_lease(secret, "hostA:1:a", timedelta(minutes=1))
    db.acquire_lease(secret, "hostA:1:a", timedelta(minutes=1))  # renewing is fine
    with pytest.raises(LeaseHeld, match="hostA:1:a"):
        db.acquire_lease(secret, "hostB:2:b", timedelta(minutes=1))
    db.release_lease(secret, "hostA:1:a")
    db.acquire_lease(secret, "hostB:2:b", timedelta(seconds=-1))  # already expired
    db.acquire_lease(secret, "hostC:3:c", timedelta(minutes=1))


def test_a_lease_of_a_dead_local_process_is_taken_over(db: StateDB) -> None:
    """Exactly identified (boot, PID namespace, pid, start time) and gone: taken at once, generation up."""
    import socket
    import subprocess
    import sys

    from rotator.state.identity import _boot_id, _pid_namespace, _start_time

    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    started = _start_time(process.pid)
    process.kill()
    process.wait()
    dead = f"{socket.gethostname()}:{process.pid}:dead:{_boot_id()}:{_pid_namespace()}:{started}"
    secret = f"s-{uuid.uuid4().hex}"
    first = db.acquire_lease(secret, dead, timedelta(hours=1))
    assert db.acquire_lease(secret, "me:1:x", timedelta(minutes=1)) == first + 1


def test_a_writer_that_lost_its_lease_is_fenced_off(db: StateDB) -> None:
    """Fencing: after another owner took the lease, the old owner's write changes nothing."""
    from rotator.errors import LeaseLost
    from rotator.state.leases import Fence

    secret = f"s-{uuid.uuid4().hex}"
    rotation = db.get(new(db, secret))
    generation = db.acquire_lease(secret, "a:1:x", timedelta(seconds=-1))  # lapses at once
    assert db.acquire_lease(secret, "b:2:y", timedelta(minutes=1)) == generation + 1
    with pytest.raises(LeaseLost):
        db.update(rotation, actor="a", event="creating", state="creating", fence=Fence(secret, "a:1:x", generation))
    assert db.get(rotation.id).state == "requested"
    assert [e.event for e in db.events(rotation_id=rotation.id)] == ["requested"]
    taker = Fence(secret, "b:2:y", generation + 1)
    assert db.update(rotation, actor="b", event="creating", state="creating", fence=taker).state == "creating"
    with pytest.raises(LeaseLost):
        db.renew_lease(Fence(secret, "a:1:x", generation), timedelta(minutes=1))


def test_audit_is_append_only_in_the_database(db: StateDB) -> None:
    rid = new(db, f"s-{uuid.uuid4().hex}")
    assert [e.event for e in db.events(rotation_id=rid)] == ["requested"]
    with pytest.raises(DatabaseError, match="append-only"), db.engine.begin() as conn:
        conn.execute(text("UPDATE audit_events SET actor = 'mallory'"))
    with pytest.raises(DatabaseError, match="append-only"), db.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_events"))


def attempted(db: StateDB, rotation_id: str, step: str, *, error: str, next_attempt_at: datetime | None) -> None:
    """A failed try of `step` written as the engine's error path writes it: through its journal."""
    journal = Journal(db=db, actor="t", clock=db.clock)
    rotation = db.get(rotation_id)
    journal.attempt(rotation, step, error=error, next_attempt_at=next_attempt_at)
    assert journal.flush(rotation)


def test_step_progress_survives_and_counts_attempts(db: StateDB) -> None:
    rid = new(db, f"s-{uuid.uuid4().hex}")
    attempted(db, rid, "creating", error="HTTP 503", next_attempt_at=None)
    attempted(db, rid, "creating", error="HTTP 429", next_attempt_at=None)
    progress = db.step(rid, "creating")
    assert progress is not None and progress.attempts == 2 and progress.last_error == "HTTP 429"


def test_a_step_left_is_marked_finished_whether_or_not_it_was_retried(db: StateDB) -> None:
    rid = new(db, f"s-{uuid.uuid4().hex}")
    later = datetime.now(UTC) + timedelta(minutes=5)
    db.update(db.get(rid), actor="t", event="creating", state="creating")
    attempted(db, rid, "creating", error="HTTP 503", next_attempt_at=later)
    attempted(db, rid, "creating", error="HTTP 503", next_attempt_at=later)
    db.update(db.get(rid), actor="t", event="key.created", state="staged")
    steps = {p.step: p for p in db.steps(rid)}
    assert set(steps) == {"requested", "creating"}
    retried, first = steps["creating"], steps["requested"]
    assert retried.attempts == 2 and retried.finished_at is not None and retried.next_attempt_at is None
    assert retried.started_at < retried.finished_at
    assert first.attempts == 1 and first.finished_at is not None and first.started_at == first.finished_at


def test_last_completed_and_finished_since_give_aware_times_of_the_newest_end(db: StateDB) -> None:
    """What the daemon plans from; SQLite's text timestamps are parsed here, not by SQLAlchemy."""
    from sqlalchemy import update

    from rotator.state.clock import utcnow
    from rotator.state.schema import Rotation

    secret = f"s-{uuid.uuid4().hex[:8]}"
    ends = [utcnow() - timedelta(days=3), utcnow() - timedelta(days=1)]
    for end in ends:
        rotation_id = new(db, secret)
        with db.session() as s:
            s.execute(update(Rotation).where(Rotation.id == rotation_id).values(state="completed", finished_at=end))
    newest = db.last_completed_at()[secret]
    assert newest == ends[1] and newest.tzinfo is not None
    since = db.finished_since(utcnow() - timedelta(days=2))
    assert since[secret] == ends[1] and since[secret].tzinfo is not None


def test_a_pooled_connection_the_server_dropped_while_idle_is_replaced_unseen(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A restart, a failover or an idle timeout ends a pooled connection: the next transaction
    gets a live one. (Connections given back less than IDLE_BEFORE_PING ago are not pinged.)"""
    db = StateDB(postgres_url)
    with db.engine.connect() as conn:
        pid = conn.execute(text("SELECT pg_backend_pid()")).scalar()
    other = StateDB(postgres_url)
    with other.engine.begin() as conn:
        assert conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar()
    monkeypatch.setattr(state_connection, "IDLE_BEFORE_PING", 0.0)
    assert db.find(str(uuid.uuid4())) is None
    with db.engine.connect() as conn:
        assert conn.execute(text("SELECT pg_backend_pid()")).scalar() != pid
    db.close()
    other.close()


def test_promise_6_a_holder_whose_proof_aged_renews_the_lease_before_acting(db: StateDB) -> None:
    """Half the lease's TTL has gone by since the last proof: before a side effect the holder asks
    the database again, the lease is renewed for a whole TTL (still its own, the same generation),
    and the side effect may go ahead."""
    from rotator.state.leases import Fence

    secret, ttl = f"s-{uuid.uuid4().hex}", timedelta(seconds=6)
    fence = Fence(secret, "a:1:x", db.acquire_lease(secret, "a:1:x", ttl))
    time.sleep(ttl.total_seconds() / 2 + 0.2)  # the proof is too old to act on now; the lease still runs
    db.check_fence(fence)
    time.sleep(ttl.total_seconds() / 2)  # the first TTL has run out by now; the renewed one has not
    with pytest.raises(LeaseHeld, match="a:1:x"):
        db.acquire_lease(secret, "b:2:y", timedelta(minutes=1))
    assert db.acquire_lease(secret, "a:1:x", ttl) == fence.generation


def test_a_lost_lease_says_which_secret_and_generation(db: StateDB) -> None:
    """LeaseLost, the reason a holder stops, names the secret and the lease's generation, whether
    the holder let the lease go or another took it."""
    from rotator.errors import LeaseLost
    from rotator.state.leases import Fence

    secret = f"s-{uuid.uuid4().hex}"
    generation = db.acquire_lease(secret, "a:1:x", timedelta(minutes=1))
    fence = Fence(secret, "a:1:x", generation)
    db.release_lease(secret, "a:1:x")
    with pytest.raises(LeaseLost, match=rf"{secret}.*generation {generation}\b"):
        db.check_fence(fence)
    db.acquire_lease(secret, "b:2:y", timedelta(minutes=1))
    with pytest.raises(LeaseLost, match=rf"{secret}.*generation {generation}\b"):
        db.renew_lease(fence, timedelta(minutes=1))
