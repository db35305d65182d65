"""Edges of the lease, claim and confirm code that the whole-rotation tests pass over (concepts.md
promises 3 and 6): a lease just taken or claimed is its own proof, a finished rotation is never
claimed, and a confirm hook's answer names the fingerprint exactly."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from rotator.engine.gate_signals import confirms
from rotator.state.db import StateDB
from rotator.state.leases import Fence

TTL = timedelta(seconds=30)
OWNER = "elsewhere:1:abcd"


@pytest.fixture
def db(tmp_path: Path) -> Iterator[StateDB]:
    state = StateDB(f"sqlite:///{tmp_path}/state.db")
    yield state
    state.close()


def _rotation(db: StateDB, secret: str) -> str:
    return db.create_rotation(secret=secret, provider="bw", policy="p", trigger="t", reason="r", actor="t").id


def test_promise_6_a_lease_just_taken_proves_itself_for_the_first_side_effect(db: StateDB) -> None:
    generation = db.acquire_lease("app", OWNER, TTL)
    db.check_fence(Fence("app", OWNER, generation))  # no LeaseLost: the taking is the proof


def test_promise_6_a_claimed_lease_proves_itself_for_the_first_side_effect(db: StateDB) -> None:
    rotation_id = _rotation(db, "app")
    claimed = db.claim_due(OWNER, TTL, due_by=db.clock() + timedelta(seconds=1))
    assert claimed is not None and claimed[1].id == rotation_id
    db.check_fence(Fence("app", OWNER, claimed[0]))


@pytest.mark.parametrize("state", ["completed", "failed"])
def test_promise_6_a_finished_rotation_is_never_claimed(db: StateDB, state: str) -> None:
    rotation_id = _rotation(db, "app")
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE rotations SET state = :state WHERE id = :id"), {"state": state, "id": rotation_id})
    assert db.claim_due(OWNER, TTL, due_by=db.clock() + timedelta(days=1)) is None


def test_promise_6_a_claim_passes_over_a_rotation_another_holds_and_takes_the_next(db: StateDB) -> None:
    held, free = _rotation(db, "held"), _rotation(db, "free")
    db.acquire_lease("held", "otherhost:1:zzzz", TTL)
    claimed = db.claim_due(OWNER, TTL, due_by=db.clock() + timedelta(seconds=1))
    assert claimed is not None and claimed[1].id == free and claimed[1].id != held
    assert db.claim_due(OWNER, TTL, due_by=db.clock() + timedelta(seconds=1), skip={free}) is None


@pytest.mark.parametrize(
    ("answer", "confirmed"),
    [
        ('{"fingerprint": "sha256:0123456789ab"}', True),
        ("sha256:0123456789ab", True),
        ("  sha256:0123456789ab\n", True),
        ('{"fingerprint": "sha256:0123456789ac"}', False),
        ('{"fp": "sha256:0123456789ab"}', False),
        ('["sha256:0123456789ab"]', False),
        ("sha256:0123456789ab and more", False),
        ("", False),
    ],
)
def test_promise_3_a_confirm_answer_names_the_fingerprint_exactly(answer: str, confirmed: bool) -> None:
    assert confirms(answer, "sha256:0123456789ab") is confirmed


def test_promise_3_an_empty_fingerprint_is_never_confirmed() -> None:
    assert not confirms("", "") and not confirms('{"fingerprint": ""}', "")


def test_promise_6_no_wait_on_postgresql_outlasts_the_lease() -> None:
    """concepts.md: lock_timeout a third of engine.lease_ttl, statement_timeout a half,
    idle_in_transaction_session_timeout a quarter; keepalives and tcp_user_timeout within a quarter."""
    from rotator.state.bounds import connect_args

    args = connect_args(timedelta(minutes=2))
    assert args["options"] == (
        "-c idle_in_transaction_session_timeout=30000 -c lock_timeout=40000 -c statement_timeout=60000"
    )
    assert args["connect_timeout"] == 30 and args["tcp_user_timeout"] == 30000
    assert (args["keepalives"], args["keepalives_idle"], args["keepalives_interval"], args["keepalives_count"]) == (
        1,
        15,
        7,
        3,
    )
    short = connect_args(timedelta(seconds=1))  # never below what a round trip needs
    assert "lock_timeout=333" in short["options"] and short["connect_timeout"] == 2
    assert short["keepalives_idle"] == 1 and short["keepalives_interval"] == 1 and short["tcp_user_timeout"] == 250
