"""Leases and fencing: one holder at a time advances a secret's rotation, a lease taken anew
gets a higher generation, and a write under an older one is refused (LeaseLost)."""

from __future__ import annotations

import socket
import time
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import (
    ColumnElement,
    Connection,
    Table,
    and_,
    bindparam,
    case,
    func,
    or_,
    select,
    text,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from rotator.errors import LeaseHeld, LeaseLost, RotationError
from rotator.state.clock import utcnow
from rotator.state.connection import Database, aware, db_now
from rotator.state.identity import holder_is_dead, process_identity
from rotator.state.rotations import read_rotation
from rotator.state.schema import IN_FLIGHT, Lease, Rotation

_LEASES = cast(Table, Lease.__table__)
_ROTATIONS = cast(Table, Rotation.__table__)

# The lease row is locked first and only then is PostgreSQL's clock read: a volatile function in
# the query above a locking CTE runs once the lock is granted, whereas now() is the transaction's
# start and a value computed beside the row lock is computed before any wait for it.
_FENCE_REMAINING_PG = text(
    "WITH held AS (SELECT expires_at FROM leases"
    " WHERE secret = :secret AND owner = :owner AND generation = :generation FOR UPDATE)"
    " SELECT extract(epoch FROM expires_at - clock_timestamp()) FROM held"
)
_FENCE_ROW_SQLITE = (
    select(_LEASES.c.expires_at)
    .where(
        _LEASES.c.secret == bindparam("secret"),
        _LEASES.c.owner == bindparam("owner"),
        _LEASES.c.generation == bindparam("generation"),
    )
    .with_for_update()
)
"""SQLite: one writer at a time already (BEGIN IMMEDIATE); the remaining time is reckoned in Python."""
_LEASE_EXTEND_PG = text("UPDATE leases SET expires_at = clock_timestamp() + :ttl WHERE secret = :secret")
"""Run with the row already locked by _FENCE_REMAINING_PG in the same transaction: no wait, a fresh clock."""


_LEASE_ROW = (
    select(_LEASES.c.owner, _LEASES.c.expires_at, _LEASES.c.generation)
    .where(_LEASES.c.secret == bindparam("of_secret"))
    .with_for_update()
)
_LEASE_INSERT = _LEASES.insert()
_LEASE_SET = _LEASES.update().where(_LEASES.c.secret == bindparam("of_secret"))
"""Given new `expires_at` (and `owner`, `generation` when taken over) as parameters."""
RELEASED = ""
"""The owner of a lease let go: an expired lease with an owner was lost by a holder (taken over first)."""
_LEASE_RELEASE = (
    _LEASES.update()
    .where(_LEASES.c.secret == bindparam("of_secret"), _LEASES.c.owner == bindparam("of_owner"))
    .values(expires_at=bindparam("until"), owner=RELEASED)
)

REPLICA = "replica:"
"""Leases named so are replicas' heartbeats, not secrets' (a secret's name has no ':')."""
IDLE = "replica:idle/"
"""Leases named so say a replica is idle (runtime/sharing.py). Under `replica:`, so that what
tells replicas' leases from secrets' still does (a host name has no '/', so no heartbeat's does)."""


def _alive(*where: ColumnElement[bool]) -> ColumnElement[int]:
    return func.count().filter(*where, _LEASES.c.expires_at > bindparam("now"))


_REPLICAS = select(
    _alive(_LEASES.c.secret.startswith(REPLICA), ~_LEASES.c.secret.startswith(IDLE)),
    _alive(_LEASES.c.secret.startswith(IDLE)),
).where(_LEASES.c.secret.startswith(REPLICA))
"""Replicas alive, and those of them idle (given `now`, the database's clock)."""
_PROVIDER_LOCK = 74_061
"""With a provider instance's name hashed: serialises the claims that count its rotations in flight."""


@dataclass(frozen=True)
class Fence:
    """The lease a writer acts under: its secret, owner and generation (the fencing token)."""

    secret: str
    owner: str
    generation: int


class Leases(Database):
    """Leases on secrets (one holder advances a rotation), replicas' heartbeats, and the fence
    every write of a rotation checks."""

    def acquire_lease(self, secret: str, owner: str, ttl: timedelta) -> int:
        """Take or renew the lease on a secret; return its generation; raise LeaseHeld naming the holder.

        Renewing our own lease keeps its generation; taking it (new, expired, or from a holder
        provably dead) increments it, so a writer that lost it can no longer pass the fence.
        """
        started = time.monotonic()
        with self._tx() as conn:
            generation = self._acquire(conn, secret, owner, ttl)
        self._proofs.record(Fence(secret, owner, generation), sent=started, remaining=ttl.total_seconds(), ttl=ttl)
        return generation

    def lease_and_read(self, rotation_id: str, secret: str, owner: str, ttl: timedelta) -> tuple[int, Rotation]:
        """acquire_lease, and the rotation as it is under the lease, in one transaction."""
        started = time.monotonic()
        with self._tx() as conn:
            generation = self._acquire(conn, secret, owner, ttl)
            rotation = read_rotation(conn, rotation_id)
        if rotation is None:
            raise RotationError(f"no rotation with id {rotation_id!r}")
        self._proofs.record(Fence(secret, owner, generation), sent=started, remaining=ttl.total_seconds(), ttl=ttl)
        return generation, rotation

    def claim_due(
        self,
        owner: str,
        ttl: timedelta,
        *,
        due_by: datetime,
        urgent: Collection[str] = (),
        limits: Mapping[str, int] | None = None,
        skip: Collection[str] = (),
    ) -> tuple[int, Rotation] | None:
        """Take the lease of the most urgent rotation due by `due_by` that nobody holds, and read it
        in the same transaction; None when there is none left for this caller.

        Replicas call this side by side and split the work: on PostgreSQL the candidates are locked
        with SKIP LOCKED, so two replicas never wait for each other or take the same rotation.
        Rotations whose trigger or policy is in `urgent` come first, then the longest due.
        `limits` caps how many rotations of a provider instance are under lease at once, across
        every replica: the count and the claim are one transaction, serialised per instance.
        Ids in `skip` (advanced by this caller in this tick, and due still) are passed over.
        """
        limits = limits or {}
        started = time.monotonic()
        with self.session() as s:
            conn = s.connection()
            now, postgres = db_now(conn), conn.dialect.name == "postgresql"
            full = {p for p in limits if self._leased_of(s, p, now) >= limits[p]}
            r, leases = _ROTATIONS, _LEASES
            urgency = case((or_(r.c.trigger.in_(list(urgent)), r.c.policy.in_(list(urgent))), 0), else_=1)
            # a lease that ran out with an owner was lost mid-step (a let-go lease has none): that
            # rotation stands half done, so it is taken over before any new work, however urgent
            abandoned = case((and_(leases.c.owner != RELEASED, leases.c.expires_at <= now), 0), else_=1)
            free = or_(leases.c.secret.is_(None), leases.c.expires_at <= now)
            # a holder on this host may be provably dead (a restarted daemon): _holder_is_dead decides
            local = leases.c.owner.startswith(f"{socket.gethostname()}:", autoescape=True)
            query = (
                select(r.c.id, r.c.secret, r.c.provider, leases.c.owner, leases.c.expires_at)
                .select_from(r.outerjoin(leases, leases.c.secret == r.c.secret))
                .where(IN_FLIGHT, r.c.next_attempt_at <= due_by, or_(free, local))
                .order_by(abandoned, urgency, r.c.next_attempt_at)
                .limit(8)
            )
            if full:
                query = query.where(r.c.provider.not_in(sorted(full)))
            if skip:
                query = query.where(r.c.id.not_in(sorted(skip)))
            if postgres:
                query = query.with_for_update(of=r, skip_locked=True)
            for rotation_id, secret, provider, holder, expires_at in conn.execute(query).all():
                if holder is not None and expires_at > now and not holder_is_dead(holder):
                    continue
                if provider in limits:
                    if postgres:
                        conn.execute(select(func.pg_advisory_xact_lock(_PROVIDER_LOCK, func.hashtext(provider))))
                    if self._leased_of(s, provider, now, but=secret) >= limits[provider]:
                        continue
                try:
                    generation = self._acquire(conn, secret, owner, ttl)
                except LeaseHeld:
                    continue  # taken a moment ago by a caller that does not claim (a CLI)
                rotation = read_rotation(conn, rotation_id)
                assert rotation is not None
                fence = Fence(secret, owner, generation)
                self._proofs.record(fence, sent=started, remaining=ttl.total_seconds(), ttl=ttl)
                return generation, rotation
        return None

    @staticmethod
    def _leased_of(s: Session, provider: str, now: datetime, *, but: str | None = None) -> int:
        """Rotations in flight of a provider instance whose secret is under an unexpired lease."""
        r, leases = _ROTATIONS, _LEASES
        query = (
            select(func.count())
            .select_from(leases.join(r, r.c.secret == leases.c.secret))
            .where(r.c.provider == provider, IN_FLIGHT, leases.c.expires_at > now)
        )
        if but is not None:
            query = query.where(leases.c.secret != but)
        return int(s.connection().execute(query).scalar_one())

    def _acquire(self, conn: Connection, secret: str, owner: str, ttl: timedelta) -> int:
        key = {"of_secret": secret}
        current = conn.execute(_LEASE_ROW, key).first()
        now = db_now(conn)  # after the row lock: a wait for it must not age the new expiry
        if current is None:
            try:
                with conn.begin_nested():
                    row = {"secret": secret, "owner": owner, "expires_at": now + ttl, "generation": 1}
                    conn.execute(_LEASE_INSERT, row)
                return 1
            except IntegrityError:
                current = conn.execute(_LEASE_ROW, key).first()
        if current is None:
            raise LeaseHeld(f"secret {secret!r}: lease row vanished; try again", retry_after=1.0)
        holder, expires_at, generation = current
        if holder == owner and expires_at > now:
            conn.execute(_LEASE_SET, {**key, "expires_at": now + ttl})
            return int(generation)
        if expires_at <= now or holder_is_dead(holder):
            conn.execute(_LEASE_SET, {**key, "owner": owner, "expires_at": now + ttl, "generation": generation + 1})
            return int(generation) + 1
        until = expires_at.isoformat(timespec="seconds")
        raise LeaseHeld(f"secret {secret!r} is being advanced by {holder} (lease until {until})", retry_after=1.0)

    def heartbeat(self, owner: str, ttl: timedelta, *, idle: bool = False) -> tuple[int, int]:
        """Say this replica is alive for `ttl` more, and whether it is idle (it has not wanted to
        send under a rate limit lately); return how many replicas are alive and how many of them
        are busy (this one too).

        Leases named `replica:<owner>`, renewed every heartbeat: replicas need no table of their
        own to count each other, and a dead one stops counting when its lease expires. An idle
        one also holds `replica:idle/<owner>` for as long: a replica that never says it is idle
        (one from before 0.9) counts as busy, and the others leave it its share."""
        name, marker = f"{REPLICA}{owner}"[:200], f"{IDLE}{owner}"[:200]
        with self._tx() as conn:
            self._acquire(conn, name, owner, ttl)
            if idle:
                self._acquire(conn, marker, owner, ttl)
            else:
                conn.execute(_LEASE_RELEASE, {"of_secret": marker, "of_owner": owner, "until": db_now(conn)})
            alive, idle_ones = conn.execute(_REPLICAS, {"now": db_now(conn)}).one()
            return int(alive), max(int(alive) - int(idle_ones), 0)

    def replicas_alive(self) -> int:
        """How many daemons renewed their heartbeat within its ttl (`rotator status` says when none)."""
        with self._tx() as conn:
            return int(conn.execute(_REPLICAS, {"now": db_now(conn)}).one()[0])

    def farewell(self, owner: str) -> None:
        """This replica stops: the others count without it at once."""
        self.release_lease(f"{REPLICA}{owner}"[:200], owner)
        self.release_lease(f"{IDLE}{owner}"[:200], owner)

    @contextmanager
    def exclusive(self, name: str, *, ttl: timedelta, wait: timedelta) -> Iterator[None]:
        """A lock across every process on this database, for work that is not a rotation's (a
        Boltly refresh): a lease named `name` (never a secret's name: those have no ':'), waited
        for up to `wait`, held at most `ttl`, let go at the end. LeaseHeld when it stays taken."""
        owner, deadline, pause = process_identity(), time.monotonic() + wait.total_seconds(), 0.05
        while True:
            try:
                self.acquire_lease(name, owner, ttl)
                break
            except LeaseHeld:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(pause)
                pause = min(pause * 2, 1.0)
        try:
            yield
        finally:
            self.release_lease(name, owner)

    def renew_lease(self, fence: Fence, ttl: timedelta) -> None:
        """Extend a lease still held under `fence` to `ttl` from now by the database's clock;
        raise LeaseLost when it is not held (expired, or taken)."""
        started = time.monotonic()
        with self._tx() as conn:
            remaining = self._lease_remaining(conn, fence)
            if remaining > 0:
                if conn.dialect.name == "postgresql":
                    conn.execute(_LEASE_EXTEND_PG, {"secret": fence.secret, "ttl": ttl})
                else:
                    conn.execute(_LEASE_SET, {"of_secret": fence.secret, "expires_at": utcnow() + ttl})
        if remaining <= 0:
            self._proofs.forget(fence)
            raise LeaseLost(f"secret {fence.secret!r}: the lease (generation {fence.generation}) was lost")
        self._proofs.record(fence, sent=started, remaining=ttl.total_seconds(), ttl=ttl)

    def release_lease(self, secret: str, owner: str) -> None:
        """Let the lease go; the row (and its generation) stays, expired and ownerless, so
        generations only grow and a let-go lease is not mistaken for one lost mid-step."""
        self._proofs.forget_where(lambda f: isinstance(f, Fence) and f.secret == secret and f.owner == owner)
        with self._tx() as conn:
            until = db_now(conn) - timedelta(seconds=1)
            conn.execute(_LEASE_RELEASE, {"of_secret": secret, "of_owner": owner, "until": until})

    # fencing ---------------------------------------------------------------------------------------

    @staticmethod
    def _lease_remaining(conn: Connection, fence: Fence) -> float:
        """Seconds the lease `fence` names still runs, by the database's clock once its row is
        locked (0 or less: expired, or not held under `fence` at all). The row stays locked to
        the end of the transaction, so no one takes the lease before this one's writes commit."""
        params = {"secret": fence.secret, "owner": fence.owner, "generation": fence.generation}
        if conn.dialect.name == "postgresql":
            found = conn.execute(_FENCE_REMAINING_PG, params).scalar()
            return -1.0 if found is None else float(found)
        expires_at = conn.execute(_FENCE_ROW_SQLITE, params).scalar()
        return -1.0 if expires_at is None else (aware(expires_at) - utcnow()).total_seconds()

    def _check_fence(self, conn: Connection, fence: Fence | None) -> None:
        """In a write's transaction, after any lock it takes: the lease `fence` names still holds,
        or LeaseLost (no fence: a write outside any lease, a person's or a test's). The answer is
        a proof for the side effect that may follow the write (state/proofs.py)."""
        if fence is None:
            return
        secret = fence.secret
        sent = time.monotonic()
        remaining = self._lease_remaining(conn, fence)
        if remaining <= 0:
            self._proofs.forget(fence)
            raise LeaseLost(f"secret {secret!r}: the lease (generation {fence.generation}) is no longer ours")
        if (ttl := self._proofs.ttl(fence)) is not None:
            self._proofs.record(fence, sent=sent, remaining=remaining, ttl=ttl)

    def check_fence(self, fence: Fence | None) -> None:
        """Right before a side effect that cannot be fenced (create, stage, promote, revoke, a hook):
        prove the lease is still ours, with at least half its TTL to run; LeaseLost otherwise.

        Answered from memory while the last proof — a write, a renewal — was asked for recently
        enough (counted from when it was sent, so an answer delayed on the way counts as old);
        else the lease is renewed now, and if even that answer came too late, nothing is done.
        """
        if fence is None or self._proofs.fresh(fence):
            return
        secret = fence.secret
        ttl = self._proofs.ttl(fence)
        if ttl is None:
            raise LeaseLost(f"secret {secret!r}: the lease (generation {fence.generation}) was lost or let go")
        self.renew_lease(fence, ttl)
        if not self._proofs.fresh(fence):
            raise LeaseLost(f"secret {secret!r}: the lease could not be proven in time (the database answered late)")
