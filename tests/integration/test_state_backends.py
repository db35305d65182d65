"""The state layer on every backend it supports: SQLite (embedded default) and PostgreSQL (replicas)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DatabaseError

from rotator.errors import LeaseHeld
from rotator.state.db import ActiveRotationExists, StateDB


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
    import socket

    secret = f"s-{uuid.uuid4().hex}"
    db.acquire_lease(secret, f"{socket.gethostname()}:999999999:dead", timedelta(hours=1))
    db.acquire_lease(secret, "me:1:x", timedelta(minutes=1))


def test_audit_is_append_only_in_the_database(db: StateDB) -> None:
    rid = new(db, f"s-{uuid.uuid4().hex}")
    assert [e.event for e in db.events(rotation_id=rid)] == ["requested"]
    with pytest.raises(DatabaseError, match="append-only"), db.engine.begin() as conn:
        conn.execute(text("UPDATE audit_events SET actor = 'mallory'"))
    with pytest.raises(DatabaseError, match="append-only"), db.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_events"))


def test_step_progress_survives_and_counts_attempts(db: StateDB) -> None:
    rid = new(db, f"s-{uuid.uuid4().hex}")
    db.record_attempt(rid, "creating", error="HTTP 503", next_attempt_at=None)
    db.record_attempt(rid, "creating", error="HTTP 429", next_attempt_at=None)
    progress = db.step(rid, "creating")
    assert progress is not None and progress.attempts == 2 and progress.last_error == "HTTP 429"
