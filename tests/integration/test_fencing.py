"""Fencing that holds whatever the connection does, on the real PostgreSQL: a write that waited
behind a stuck transaction is judged when it is made, a renewal counts from when it was made,
no wait outlasts the lease, and a proof whose answer came late is not acted on."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy
from sqlalchemy import text

from rotator.engine.rotation import Engine
from rotator.errors import LeaseHeld, StateBusy
from rotator.settings.models import EngineSettings
from rotator.state.db import Change, StateDB
from rotator.state.leases import Fence
from rotator.state.schema import Rotation
from tests.support.pg_locks import in_thread, waiting
from tests.tcp_proxy import Proxy

AUDIT_LOCK = 7_406_118_002
TTL = timedelta(seconds=6)


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    from tests.conftest import _throwaway_database

    with _throwaway_database() as made:
        yield made


@pytest.fixture(scope="module")
def db(url: str) -> StateDB:
    return StateDB(url, lease_ttl=TTL)


@pytest.fixture(scope="module")
def raw(url: str) -> Iterator[sqlalchemy.Engine]:
    """Another client, with no bounds of its own: it plays the stuck replica and the test's eyes."""
    engine = sqlalchemy.create_engine(url)
    yield engine
    engine.dispose()


def _held(db: StateDB) -> tuple[Rotation, Fence]:
    secret = f"s-{uuid.uuid4().hex[:12]}"
    rotation = db.create_rotation(secret=secret, provider="bw", policy="p", trigger="t", reason="r", actor="t")
    owner = f"host-a:1:{uuid.uuid4().hex[:8]}"
    return rotation, Fence(secret, owner, db.acquire_lease(secret, owner, TTL))


def _expire_in(raw: sqlalchemy.Engine, secret: str, seconds: float) -> None:
    """The lease runs out `seconds` from now by the database's clock (time passing, without the wait)."""
    with raw.begin() as conn:
        conn.execute(
            text("UPDATE leases SET expires_at = clock_timestamp() + make_interval(secs => :s) WHERE secret = :secret"),
            {"s": seconds, "secret": secret},
        )


def _expired(raw: sqlalchemy.Engine, secret: str) -> bool:
    with raw.connect() as conn:
        found = conn.execute(
            text("SELECT expires_at <= clock_timestamp() FROM leases WHERE secret = :s"), {"s": secret}
        ).scalar()
    return bool(found)


def _acquired(db: StateDB, secret: str, owner: str, ttl: timedelta) -> int:
    """The lease taken, for a test's set-up: with a TTL of seconds the server's bounds are a second
    or so, and a machine busy with other tests can pause a transaction that long (StateBusy)."""
    for _ in range(20):
        try:
            return db.acquire_lease(secret, owner, ttl)
        except StateBusy:
            continue
    raise AssertionError("the lease could not be taken in 20 tries")


def _fenced_apply(db: StateDB, fence: Fence, rotation: Rotation, event: str) -> None:
    """A holder's write of `rotation` with an audit event, under `fence`."""
    change = Change({"waiting_for": event}, rotation.state, rotation.created_at, event=event)
    db.apply(rotation, [change], actor="a", fence=fence)


def test_a_write_that_waited_on_the_audit_chain_is_judged_after_the_wait(db: StateDB, raw: sqlalchemy.Engine) -> None:
    """The lease runs out while the write waits for the audit chain's lock: refused, nothing written
    (it was checked with the transaction's start time, before the lock, and went through)."""
    rotation, fence = _held(db)
    _expire_in(raw, fence.secret, 0.5)
    with raw.connect() as blocker:
        blocker.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": AUDIT_LOCK})
        thread, outcome = in_thread(lambda: _fenced_apply(db, fence, rotation, "late.write"))
        deadline = time.monotonic() + 30
        while not (waiting(raw, "advisory") and _expired(raw, fence.secret)) and "at" not in outcome:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        blocker.rollback()
    thread.join(30)
    assert isinstance(outcome.get("error"), LeaseHeld), outcome
    assert db.get(rotation.id).waiting_for != "late.write"
    assert "late.write" not in [e.event for e in db.events(rotation_id=rotation.id)]


def test_one_stuck_transaction_holding_the_audit_chain_stops_no_one_for_long(
    db: StateDB, raw: sqlalchemy.Engine
) -> None:
    """A transaction that holds the chain's lock and never ends (its client is gone silent): a
    writer waits at most a third of its lease, then is told it could not go on — it does not
    queue behind the stuck one for as long as that lasts."""
    rotation, fence = _held(db)
    with raw.connect() as blocker:
        blocker.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": AUDIT_LOCK})
        thread, outcome = in_thread(lambda: _fenced_apply(db, fence, rotation, "blocked.write"))
        thread.join(3 * TTL.total_seconds())
        still_stuck = thread.is_alive()
        blocker.rollback()
    thread.join(30)
    assert not still_stuck, "the write waited as long as the stuck transaction held the lock"
    assert isinstance(outcome.get("error"), LeaseHeld), outcome
    assert "blocked.write" not in [e.event for e in db.events(rotation_id=rotation.id)]


def test_a_renewal_that_waited_counts_its_ttl_from_when_it_was_made(db: StateDB, raw: sqlalchemy.Engine) -> None:
    """The renewal queues behind a lock on the lease row: the new expiry is the TTL from the end
    of the wait, not from the start of its transaction."""
    _, fence = _held(db)
    with raw.connect() as blocker:
        blocker.execute(text("SELECT 1 FROM leases WHERE secret = :s FOR UPDATE"), {"s": fence.secret})
        thread, outcome = in_thread(lambda: db.renew_lease(fence, TTL))
        deadline = time.monotonic() + 30
        while not waiting(raw, "transactionid") and "at" not in outcome:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(1.0)  # the renewal waits this long at least
        released_at = blocker.execute(text("SELECT clock_timestamp()")).scalar_one()
        blocker.rollback()
    thread.join(30)
    assert "error" not in outcome, outcome
    with raw.connect() as conn:
        expires_at = conn.execute(
            text("SELECT expires_at FROM leases WHERE secret = :s"), {"s": fence.secret}
        ).scalar_one()
    assert expires_at >= released_at + TTL - timedelta(seconds=0.3), (expires_at, released_at)


def test_no_side_effect_on_a_proof_whose_answer_came_after_the_lease_was_taken(
    url: str, db: StateDB, raw: sqlalchemy.Engine
) -> None:
    """The write before a side effect commits, and the answer stalls on the way back (a TCP path
    that stopped moving packets) while the lease runs out and another replica takes it: when the
    answer arrives, the side effect is not started."""
    short = timedelta(seconds=2)  # the stall must outlast it: real time passes, not the database's alone
    proxy = Proxy(("127.0.0.1", int(url.split(":")[-1].split("/")[0])))
    mine = StateDB(url.replace(url.split("@")[1].split("/")[0], f"127.0.0.1:{proxy.port}"), lease_ttl=short)
    secret = f"s-{uuid.uuid4().hex[:12]}"
    rotation = db.create_rotation(secret=secret, provider="bw", policy="p", trigger="t", reason="r", actor="t")
    owner = f"host-a:1:{uuid.uuid4().hex[:8]}"
    fence = Fence(secret, owner, _acquired(mine, secret, owner, short))
    engine = Engine(db=mine, resolve=lambda r: None, settings=EngineSettings(), actor="a")  # type: ignore[arg-type,return-value]
    engine.record(rotation, waiting_for="about to create")
    mine.clock()  # a process that has been running has read the database's clock already

    def side_effect_allowed() -> bool:
        engine.fence = fence
        engine.before_side_effect(rotation)
        return True

    try:
        proxy.stall_after(b"COMMIT")
        thread, outcome = in_thread(side_effect_allowed)
        deadline = time.monotonic() + 30
        while not proxy.stalled:
            assert time.monotonic() < deadline, "the write never committed"
            time.sleep(0.05)
        while not _expired(raw, secret):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        db.acquire_lease(secret, "host-b:2:bbbb", TTL)  # another replica takes the lapsed lease
        proxy.resume()
        thread.join(30)
    finally:
        proxy.resume()
        mine.close()
        proxy.down()
    assert db.get(rotation.id).waiting_for == "about to create", outcome  # the write itself was made in time
    assert isinstance(outcome.get("error"), LeaseHeld), f"the side effect would have gone ahead: {outcome}"


def test_promise_6_a_lease_held_by_a_live_process_is_not_taken_before_it_expires(tmp_path: Any) -> None:
    """A holder is taken over early only when provably dead: this process, alive (its pid and
    start time as recorded in its identity), keeps its lease against another owner, who is told
    to look again shortly."""
    from rotator.state.identity import process_identity

    db = StateDB(f"sqlite:///{tmp_path}/state.db")
    try:
        mine = process_identity()
        generation = db.acquire_lease("live", mine, timedelta(minutes=5))
        with pytest.raises(LeaseHeld) as exc:
            db.acquire_lease("live", "another-replica", timedelta(minutes=5))
        assert exc.value.retry_after is not None and exc.value.retry_after > 0
        assert db.acquire_lease("live", mine, timedelta(minutes=5)) == generation  # still ours, not taken
    finally:
        db.close()


def test_promise_6_a_lease_taken_again_after_it_expired_is_a_new_generation_even_for_its_owner(
    db: StateDB, raw: sqlalchemy.Engine
) -> None:
    """Between expiry and taking it again anyone could have held it; the owner's work from before
    the expiry (its old fence) must not pass, so the generation moves on as for any other taker."""
    rotation, old = _held(db)
    assert db.acquire_lease(old.secret, old.owner, TTL) == old.generation  # a renewal keeps it
    _expire_in(raw, old.secret, -1)
    assert _expired(raw, old.secret)
    again = db.acquire_lease(old.secret, old.owner, TTL)
    assert again == old.generation + 1
    with pytest.raises(LeaseHeld):  # LeaseLost: the old fence is refused
        _fenced_apply(db, old, rotation, "stale.write")
    _fenced_apply(db, Fence(old.secret, old.owner, again), rotation, "fresh.write")
    events = [e.event for e in db.events(rotation_id=rotation.id)]
    assert "stale.write" not in events and "fresh.write" in events
