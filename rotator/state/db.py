"""Access to the state database: rotations, step progress, audit trail, leases.

Each method is one short transaction: nothing holds a connection while a rotation waits.
"""

from __future__ import annotations

import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

from sqlalchemy import (
    Connection,
    CursorResult,
    Engine,
    String,
    Table,
    and_,
    bindparam,
    case,
    create_engine,
    event,
    func,
    or_,
    select,
    text,
    type_coerce,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, DisconnectionError, IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from rotator.errors import ActiveRotationExists, LeaseHeld, LeaseLost, RotationError, StateBusy, StateUnavailable
from rotator.lifecycle import TERMINAL, State
from rotator.state import bounds, clock, migrate
from rotator.state.chain import GENESIS, hash_of
from rotator.state.clock import DatabaseClock
from rotator.state.proofs import Proofs
from rotator.state.schema import IN_FLIGHT, AuditEvent, Lease, LeftoverKey, OutboxEntry, Rotation, StepProgress

# the tables, for the hot path's Core statements (the ORM's bookkeeping costs more than the SQL)
_ROTATIONS = cast(Table, Rotation.__table__)
_AUDIT = cast(Table, AuditEvent.__table__)
_STEPS = cast(Table, StepProgress.__table__)
_LEASES = cast(Table, Lease.__table__)
_OUTBOX = cast(Table, OutboxEntry.__table__)
_LEFTOVERS = cast(Table, LeftoverKey.__table__)

# the statements of every write, built once: SQLAlchemy makes a statement's cache key (a walk of
# it) each time a new one is executed, and a rotation writes a dozen times
_NEWEST_HASH = select(_AUDIT.c.hash).order_by(_AUDIT.c.id.desc()).limit(1)
_AUDIT_INSERT = _AUDIT.insert()
_ROTATION_INSERT = _ROTATIONS.insert()
_ROTATION_BY_ID = select(_ROTATIONS).where(_ROTATIONS.c.id == bindparam("id"))
_OUTBOX_INSERT = _OUTBOX.insert()
_LEFTOVER_INSERT = _LEFTOVERS.insert()
_MADE_BY_ROTATOR = (
    select(_ROTATIONS.c.id)
    .where(
        _ROTATIONS.c.secret == bindparam("secret"),
        _ROTATIONS.c.state == State.COMPLETED.value,
        _ROTATIONS.c.new_key_id == bindparam("key_id"),
        _ROTATIONS.c.new_fingerprint == bindparam("fingerprint"),
    )
    .limit(1)
)
_ADOPTIONS = select(_AUDIT.c.actor, _AUDIT.c.detail).where(
    _AUDIT.c.secret == bindparam("secret"), _AUDIT.c.event == bindparam("event")
)
_DB_NOW = select(func.clock_timestamp())
_ROTATION_SET = _ROTATIONS.update().where(_ROTATIONS.c.id == bindparam("of_rotation"))
"""Given the rotation's new column values as parameters."""


def _steps_finished(insert: Any) -> Any:
    statement = insert(_STEPS)
    return statement.on_conflict_do_update(
        index_elements=[_STEPS.c.rotation_id, _STEPS.c.step],
        set_={"finished_at": statement.excluded.finished_at, "next_attempt_at": None},
    )


# a retried step's row exists (its attempts counted): it is marked finished; any other is added so
_STEPS_FINISHED = {"postgresql": _steps_finished(postgresql.insert), "sqlite": _steps_finished(sqlite.insert)}


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


def _for_dialect(conn: Connection, statements: dict[str, Any]) -> Any:
    """The statement of `statements` ({"postgresql": …, "sqlite": …}) that `conn`'s database speaks."""
    return statements["postgresql" if conn.dialect.name == "postgresql" else "sqlite"]


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

_AUDIT_LOCK = 7_406_118_002
"""PostgreSQL advisory lock taken by every transaction that appends to the audit chain."""
_AUDIT_LOCKED = text("SELECT pg_advisory_xact_lock(:key)")
REPLICA = "replica:"
"""Leases named so are replicas' heartbeats, not secrets' (a secret's name has no ':')."""
_PROVIDER_LOCK = 74_061
"""With a provider instance's name hashed: serialises the claims that count its rotations in flight."""


utcnow = clock.utcnow
"""This host's clock: for what is shown to people, never for a duration that gates a key (StateDB.clock)."""


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "?"


def _pid_namespace() -> str:
    try:
        return str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        return "?"


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (/proc/<pid>/stat field 22), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rpartition(")")[2].split()[19]


def process_identity() -> str:
    """host:pid:nonce:boot:pidns:start — with the boot id, the PID namespace and the process's
    start time, a holder can be told dead exactly, never guessed: containers that share a host
    name but not a PID namespace see a foreign namespace and wait for the lease to expire."""
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{uuid.uuid4().hex[:8]}:{_boot_id()}:{_pid_namespace()}:{_start_time(pid)}"


@dataclass(frozen=True)
class Fence:
    """The lease a writer acts under: its secret, owner and generation (the fencing token)."""

    secret: str
    owner: str
    generation: int


_fences = threading.local()


def _sqlite_pragmas(dbapi_connection: Any, _: Any) -> None:
    # the driver's own transaction handling is off: every transaction below starts with
    # BEGIN IMMEDIATE (SQLAlchemy's documented recipe), so a read never turns into a write
    # that fails on a busy database, and audit rows are appended one writer at a time
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_begin(conn: Any) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def open_engine(url: str, *, lease_ttl: timedelta = bounds.DEFAULT_TTL) -> Engine:
    """An engine on the state database; on PostgreSQL every wait is bounded below `lease_ttl`."""
    if url.startswith("sqlite") and ":memory:" not in url and url.rstrip("/") not in ("sqlite:", "sqlite+pysqlite:"):
        # every transaction takes SQLite's one write lock (BEGIN IMMEDIATE): threads of this process
        # queue for the one connection, and the next is woken the moment it is given back; with a
        # connection each, they would poll the lock in SQLite's busy handler, sleeping up to 100 ms
        # a try while it stood free (at 64 rotations at once, most of an incident's time)
        engine = create_engine(url, future=True, pool_size=1, max_overflow=0, pool_timeout=60)
    elif url.startswith("postgresql"):
        engine = create_engine(url, future=True, connect_args=bounds.connect_args(lease_ttl))
    else:
        engine = create_engine(url, future=True)
    if engine.dialect.name != "sqlite":
        _ping_when_idle(engine)
        return engine
    event.listen(engine, "connect", _sqlite_pragmas)
    event.listen(engine, "begin", _sqlite_begin)
    path = engine.url.database or ""
    if path and path != ":memory:":
        event.listen(engine, "connect", lambda *_: _private_files(path))
    return engine


@contextmanager
def unavailable_as_one_line(engine: Engine) -> Iterator[None]:
    """A state database that cannot be opened or reached (a server down, a file the system
    refuses, an option the server rejects) as StateUnavailable naming state.url: the driver's
    first line, never the URL itself (it may carry a password)."""
    try:
        yield
    except (DBAPIError, OSError) as exc:
        engine.dispose()
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        raise StateUnavailable(
            f"cannot open the state database that state.url names ({engine.dialect.name}): "
            f"{reason[0] if reason else type(exc).__name__}"
        ) from None


IDLE_BEFORE_PING = 1.0
"""Seconds a pooled server connection may have sat unused before it is tested on checkout."""


def _ping_when_idle(engine: Engine) -> None:
    """A server's connections can die between uses (restart, failover, idle timeout): one that sat
    idle is pinged before it is handed out, and replaced if dead (SQLAlchemy's documented custom
    pessimistic check: DisconnectionError on checkout makes the pool connect anew). One given back
    less than a second ago is not: `pool_pre_ping` pinged before every transaction, a round trip
    (and a transaction the server counts) for each of a rotation's nine."""

    def given_back(_: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    def handed_out(dbapi_connection: Any, record: Any, _: Any) -> None:
        since = record.info.pop("idle_since", None)
        if since is None or time.monotonic() - since < IDLE_BEFORE_PING:
            return  # just made, or just used
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:
            raise DisconnectionError(f"a pooled connection idle for {time.monotonic() - since:.0f} s is dead") from exc

    event.listen(engine, "checkin", given_back)
    event.listen(engine, "checkout", handed_out)


def _private_files(path: str) -> None:
    """The state database and its WAL files are the owner's only (0600), wherever it runs.

    Only chmod by path: opening and closing the file here would drop the POSIX locks that this
    process's SQLite connections hold on it (SQLite's documented pitfall).
    """
    for name in (path, f"{path}-wal", f"{path}-shm"):
        try:
            info = os.stat(name)
        except FileNotFoundError:
            continue
        if info.st_uid == os.geteuid() and info.st_mode & 0o077:
            os.chmod(name, 0o600)


@dataclass
class Change:
    """One recorded change of a rotation: fields, and the audit event, notifications and key left
    alive that come with it. The engine records several and writes them in one transaction."""

    fields: dict[str, Any]
    from_state: str
    at: datetime
    event: str | None = None
    detail: dict[str, Any] | None = None
    outbox: Sequence[dict[str, Any]] = ()
    leftover: dict[str, Any] | None = None
    moves: bool = True
    """False for an audit event that records no state change (from/to states left empty)."""


class StateDB:
    def __init__(self, url: str, *, upgrade: bool = False, lease_ttl: timedelta = bounds.DEFAULT_TTL) -> None:
        """Open the state database; a new one is created, an existing one must be at this rotator's schema.

        On PostgreSQL every lock wait, statement and idle transaction is bounded below `lease_ttl`
        (state/bounds.py). Raises SchemaMismatch (naming `rotator db upgrade`) unless `upgrade` is set.
        """
        self.engine = open_engine(url, lease_ttl=lease_ttl)
        with unavailable_as_one_line(self.engine):
            self.schema_was = migrate.ensure(self.engine, upgrade=upgrade)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self.claimed_by = os.environ.get("SUDO_USER") or None
        self._proofs = Proofs()
        self._clock = DatabaseClock(self._read_clock) if self.engine.dialect.name == "postgresql" else None

    def clock(self) -> datetime:
        """Now, on the database's clock (state/clock.py): what every time that gates a key is measured on."""
        return utcnow() if self._clock is None else self._clock.now()

    def _read_clock(self) -> datetime:
        with self._tx() as conn:
            return self._now(conn)

    @contextmanager
    def session(self) -> Iterator[Session]:
        with _busy_as_held(), self._sessions.begin() as session:
            yield session

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        """A transaction without the ORM's unit of work, for a rotation's steps: nine a rotation,
        each of a few statements, where a session's bookkeeping cost more than its SQL."""
        with _busy_as_held(), self.engine.begin() as conn:
            yield conn

    def close(self) -> None:
        self.engine.dispose()

    # rotations -----------------------------------------------------------------------------

    def create_rotation(
        self, *, secret: str, provider: str, policy: str, trigger: str, reason: str, actor: str
    ) -> Rotation:
        """Insert a rotation in `requested`; raise ActiveRotationExists if one is in flight.

        Nothing is fenced here, so a wait the bounds cut short (another process stuck holding
        the audit chain's lock until the server ends it) is tried again, twice."""
        for attempt in range(3):
            try:
                return self._create_rotation(
                    secret=secret, provider=provider, policy=policy, trigger=trigger, reason=reason, actor=actor
                )
            except StateBusy:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _create_rotation(
        self, *, secret: str, provider: str, policy: str, trigger: str, reason: str, actor: str
    ) -> Rotation:
        now = self.clock()
        values = {
            "id": str(uuid.uuid4()),
            "secret": secret,
            "provider": provider,
            "policy": policy,
            "state": "requested",
            "trigger": trigger,
            "reason": reason,
            "started_by": actor,
            "created_at": now,
            "updated_at": now,
            "next_attempt_at": now,
            "waiting_for": "",
        }
        rotation = Rotation(**values)
        try:
            with self._tx() as conn:
                conn.execute(_ROTATION_INSERT, values)
                self._append(
                    conn,
                    self._event(
                        rotation,
                        actor,
                        "requested",
                        None,
                        "requested",
                        {"trigger": trigger, "reason": reason, "policy": policy},
                    ),
                )
        except IntegrityError:
            existing = self.active_for(secret)
            if existing is None:
                raise
            raise ActiveRotationExists(existing) from None
        return rotation

    def get(self, rotation_id: str) -> Rotation:
        rotation = self.find(rotation_id)
        if rotation is None:
            raise RotationError(f"no rotation with id {rotation_id!r}")
        return rotation

    def find(self, rotation_id: str) -> Rotation | None:
        with self._tx() as conn:
            return self._read(conn, rotation_id)

    def ids_starting(self, prefix: str, limit: int = 3) -> list[str]:
        """Rotation ids that begin with `prefix` (the short ids commands print), at most `limit`."""
        if not re.fullmatch(r"[0-9a-fA-F-]{1,36}", prefix):
            return []
        with self._tx() as conn:
            found = conn.execute(select(_ROTATIONS.c.id).where(_ROTATIONS.c.id.startswith(prefix.lower())).limit(limit))
            return [row.id for row in found]

    @staticmethod
    def _read(conn: Connection, rotation_id: str) -> Rotation | None:
        """The rotation row as a (detached) Rotation, read without the ORM."""
        row = conn.execute(_ROTATION_BY_ID, {"id": rotation_id}).first()
        return None if row is None else Rotation(**row._mapping)

    def rotations(self, ids: Sequence[str]) -> Sequence[Rotation]:
        """The rotations with these ids, in one query."""
        with self.session() as s:
            return s.scalars(select(Rotation).where(Rotation.id.in_(ids))).all() if ids else []

    def active_for(self, secret: str) -> Rotation | None:
        with self.session() as s:
            return s.scalars(select(Rotation).where(Rotation.secret == secret, Rotation.state.not_in(TERMINAL))).first()

    def active(self) -> Sequence[Rotation]:
        with self.session() as s:
            return s.scalars(select(Rotation).where(IN_FLIGHT).order_by(Rotation.created_at)).all()

    def rotations_of(self, secret: str) -> Sequence[Rotation]:
        with self.session() as s:
            return s.scalars(select(Rotation).where(Rotation.secret == secret).order_by(Rotation.created_at)).all()

    def counts(self) -> list[tuple[str, str, int]]:
        """(provider instance, state, number of rotations) over the whole table."""
        with self.session() as s:
            rows = s.execute(
                select(Rotation.provider, Rotation.state, func.count()).group_by(Rotation.provider, Rotation.state)
            ).all()
        return [(str(p), str(st), int(n)) for p, st, n in rows]

    def attention(self) -> tuple[dict[str, int], datetime | None]:
        """Held rotations per provider instance, and since when the longest-waiting person's action waits."""
        with self.session() as s:
            held = s.execute(
                select(Rotation.provider, func.count())
                .where(Rotation.state.not_in(TERMINAL), Rotation.held_reason.is_not(None))
                .group_by(Rotation.provider)
            ).all()
            oldest = s.scalar(
                select(func.min(Rotation.waiting_since)).where(
                    Rotation.state.in_((State.AWAITING_NEW_KEY, State.AWAITING_REVOCATION))
                )
            )
        return {str(p): int(n) for p, n in held}, oldest

    def rotations_with_fingerprint(self, fingerprint: str) -> Sequence[Rotation]:
        """Rotations that made or replaced the key with this fingerprint (a leaked key's trail)."""
        with self.session() as s:
            return s.scalars(
                select(Rotation).where(
                    (Rotation.old_fingerprint == fingerprint) | (Rotation.new_fingerprint == fingerprint)
                )
            ).all()

    def secrets_with_fingerprints(self) -> set[str]:
        """Secrets for which some key's fingerprint is on record."""
        with self.session() as s:
            return set(
                s.scalars(
                    select(Rotation.secret)
                    .where(Rotation.old_fingerprint.is_not(None) | Rotation.new_fingerprint.is_not(None))
                    .distinct()
                )
            )

    def failures_since_success(self, secret: str) -> tuple[int, datetime | None]:
        """How many rotations of `secret` failed in a row since its last completed one, and when the last ended."""
        with self.session() as s:
            recent = s.scalars(
                select(Rotation).where(Rotation.secret == secret).order_by(Rotation.created_at.desc()).limit(20)
            ).all()
        failed = 0
        for rotation in recent:
            if rotation.state != State.FAILED:
                break
            failed += 1
        return failed, (recent[0].finished_at if failed else None)

    def last_completed_at(self) -> dict[str, datetime]:
        """When each secret's last rotation completed, in one query (a tick plans the whole fleet)."""
        # the raw column, parsed by datetime.fromisoformat: SQLAlchemy's SQLite date parsing took
        # 15 µs a row, most of a 100,000-secret daemon's first tick
        table = _ROTATIONS.c
        with self.session() as s:
            newest: Any = func.max(table.finished_at)
            if s.get_bind().dialect.name == "sqlite":
                newest = type_coerce(newest, String)
            # Core, not the ORM's row loading (a quarter of the time at 100,000 rows)
            rows = (
                s.connection()
                .execute(
                    select(table.secret, newest)
                    .where(table.state == State.COMPLETED, table.finished_at.is_not(None))
                    .group_by(table.secret)
                )
                .all()
            )
        return {str(secret): _aware(finished) for secret, finished in rows if finished is not None}

    def finished_since(self, since: datetime) -> dict[str, datetime]:
        """Secrets whose rotations ended (completed or failed) after `since`, with the newest end."""
        with self.session() as s:
            # no GROUP BY: SQLite would walk the secret index instead of the finished_at range
            rows = s.execute(select(Rotation.secret, Rotation.finished_at).where(Rotation.finished_at > since)).all()
        newest: dict[str, datetime] = {}
        for secret, finished in rows:
            if finished is not None and (secret not in newest or finished > newest[secret]):
                newest[str(secret)] = finished
        return newest

    def key_on_record(self, secret: str, key_id: str, fingerprint: str, *, adopted: str) -> str | None:
        """How rotator knows `key_id` is the key with `fingerprint` of `secret`, if it does: a
        completed rotation of the secret created it, or someone adopted it (`adopted` events)."""
        with self._tx() as conn:
            made = conn.execute(
                _MADE_BY_ROTATOR, {"secret": secret, "key_id": key_id, "fingerprint": fingerprint}
            ).scalar()
            if made is not None:
                return f"recorded: created by rotation {made}"
            for who, detail in conn.execute(_ADOPTIONS, {"secret": secret, "event": adopted}):
                if detail.get("key_id") == key_id and detail.get("fingerprint") == fingerprint:
                    return f"adopted by {who}"
        return None

    def completed_since(self, secret: str, since: datetime | None) -> bool:
        """Whether a rotation of `secret` completed after `since` (ever, for None)."""
        query = select(Rotation.id).where(Rotation.secret == secret, Rotation.state == State.COMPLETED)
        if since is not None:
            query = query.where(Rotation.finished_at > since)
        with self.session() as s:
            return s.scalars(query.limit(1)).first() is not None

    def last_completed(self, secret: str) -> Rotation | None:
        with self.session() as s:
            return s.scalars(
                select(Rotation)
                .where(Rotation.secret == secret, Rotation.state == State.COMPLETED)
                .order_by(Rotation.finished_at.desc())
            ).first()

    def update(
        self,
        rotation: Rotation,
        *,
        actor: str,
        event: str | None = None,
        detail: dict[str, Any] | None = None,
        outbox: Sequence[dict[str, Any]] = (),
        leftover: dict[str, Any] | None = None,
        **fields: Any,
    ) -> Rotation:
        """Write fields (and a state change) of a rotation, its audit event, the notifications that
        tell of it (`outbox`) and a key it leaves alive (`leftover`), all in one transaction."""
        change = Change(
            fields, rotation.state, self.clock(), event=event, detail=detail, outbox=outbox, leftover=leftover
        )
        with self._tx() as conn:
            self._write(conn, rotation, [change], actor=actor)
            fresh = self._read(conn, rotation.id)
        assert fresh is not None
        return fresh

    def apply(self, rotation: Rotation, changes: Sequence[Change], *, actor: str) -> None:
        """Write `changes` of a rotation, in order, in one fenced transaction; nothing is read back."""
        with self._tx() as conn:
            self._write(conn, rotation, changes, actor=actor)

    def _write(self, conn: Connection, rotation: Rotation, changes: Sequence[Change], *, actor: str) -> None:
        """The changes, then the fence: checked last, after every lock the transaction takes (the
        audit chain's above all), by the database's clock, so a write that waited is judged when
        it is made; the commit follows at once."""
        now = self.clock()
        fields: dict[str, Any] = {}
        for change in changes:
            fields.update(change.fields)
        if fields:
            fields.setdefault("updated_at", now)
            conn.execute(_ROTATION_SET, {"of_rotation": rotation.id, **fields})
        events: list[AuditEvent] = []
        finished: dict[str, datetime] = {}
        for change in changes:
            self._add_outbox(conn, change.outbox, now)
            if change.leftover is not None:
                conn.execute(
                    _LEFTOVER_INSERT,
                    {
                        "secret": rotation.secret,
                        "provider": rotation.provider,
                        "rotation_id": rotation.id,
                        "recorded_at": change.at,
                        **change.leftover,
                    },
                )
            to_state = change.fields.get("state")
            if change.event is not None:
                from_state = change.from_state if change.moves else None
                events.append(
                    self._event(rotation, actor, change.event, from_state, to_state, change.detail or {}, at=change.at)
                )
            if to_state is not None and to_state != change.from_state:
                finished[change.from_state] = change.at
        if finished:
            self._finish_steps(conn, rotation.id, finished)
        if events:
            self._append(conn, *events, fenced=rotation.secret)
        else:
            self._check_fence(conn, rotation.secret)

    def audit(
        self,
        rotation: Rotation | None,
        *,
        secret: str,
        actor: str,
        event: str,
        detail: dict[str, Any] | None = None,
    ) -> None:
        with self._tx() as conn:
            self._append(
                conn,
                AuditEvent(
                    rotation_id=rotation.id if rotation else None,
                    secret=secret,
                    at=self.clock(),
                    actor=actor,
                    event=event,
                    detail=detail or {},
                ),
                fenced=secret,
            )

    # notification outbox ----------------------------------------------------------------------------

    @staticmethod
    def _add_outbox(conn: Connection, rows: Sequence[dict[str, Any]], now: datetime) -> None:
        if rows:
            conn.execute(
                _OUTBOX_INSERT, [{"created_at": now, "next_attempt_at": now, "attempts": 0, **r} for r in rows]
            )

    def enqueue(self, rows: Sequence[dict[str, Any]]) -> None:
        with self._tx() as conn:
            self._add_outbox(conn, rows, self.clock())

    def claim_outbox(self, *, limit: int, lease: timedelta) -> list[OutboxEntry]:
        """Due entries, each claimed for `lease` (a conditional update), so two processes rarely send one twice."""
        now = self.clock()
        with self.session() as s:
            due = s.scalars(
                select(OutboxEntry)
                .where(
                    OutboxEntry.delivered_at.is_(None),
                    OutboxEntry.gave_up_at.is_(None),
                    OutboxEntry.next_attempt_at <= now,
                )
                .order_by(OutboxEntry.id)
                .limit(limit)
            ).all()
        claimed = []
        for entry in due:
            with self.session() as s:
                won = _rowcount(
                    s.execute(
                        update(OutboxEntry)
                        .where(OutboxEntry.id == entry.id, OutboxEntry.next_attempt_at == entry.next_attempt_at)
                        .values(next_attempt_at=now + lease, attempts=OutboxEntry.attempts + 1)
                    )
                )
            if won:
                entry.attempts += 1
                claimed.append(entry)
        return claimed

    def outbox_result(self, entry_id: int, *, error: str | None, retry_at: datetime | None) -> None:
        """Record a delivery: sent (no error), to be retried at `retry_at`, or given up."""
        now = self.clock()
        values: dict[str, Any] = {"last_error": error}
        if error is None:
            values["delivered_at"] = now
        elif retry_at is None:
            values["gave_up_at"] = now
        else:
            values["next_attempt_at"] = retry_at
        with self.session() as s:
            s.execute(update(OutboxEntry).where(OutboxEntry.id == entry_id).values(**values))

    def outbox_counts(self) -> tuple[int, int]:
        """(entries waiting to be delivered, entries given up on)."""
        with self.session() as s:
            pending = s.scalar(
                select(func.count()).where(OutboxEntry.delivered_at.is_(None), OutboxEntry.gave_up_at.is_(None))
            )
            given_up = s.scalar(select(func.count()).where(OutboxEntry.gave_up_at.is_not(None)))
        return int(pending or 0), int(given_up or 0)

    # keys left alive ------------------------------------------------------------------------------

    def leftovers(self, secret: str | None = None) -> Sequence[LeftoverKey]:
        """Keys rotations left alive that nobody has revoked or acknowledged yet."""
        query = select(LeftoverKey).where(LeftoverKey.resolved_at.is_(None)).order_by(LeftoverKey.id)
        if secret is not None:
            query = query.where(LeftoverKey.secret == secret)
        with self.session() as s:
            return s.scalars(query).all()

    def resolve_leftover(self, leftover_id: int, *, resolution: str, actor: str) -> None:
        with self.session() as s:
            row = s.get(LeftoverKey, leftover_id)
            if row is None or row.resolved_at is not None:
                raise RotationError(f"no open leftover key {leftover_id}")
            row.resolved_at = self.clock()
            row.resolution = resolution
            s.flush()
            self._append(
                s.connection(),
                AuditEvent(
                    rotation_id=row.rotation_id,
                    secret=row.secret,
                    at=self.clock(),
                    actor=actor,
                    event="leftover.resolved",
                    detail={"key_id": row.key_id, "fingerprint": row.fingerprint, "resolution": resolution},
                ),
            )

    def _append(self, conn: Connection, *rows: AuditEvent, fenced: str | None = None) -> None:
        """Add `rows`, in order, to the audit chain: each hashed over its content and the hash of
        the row before it, the first over the newest row's. With `fenced` (a secret), the fence
        is checked once the chain's lock is held. The caller commits right after.

        Appends are serialised (PostgreSQL: an advisory lock held to commit; SQLite: BEGIN
        IMMEDIATE), so the row read as newest is still the newest when these commit. The lock is
        taken last in a transaction and held for a few statements; a holder whose connection
        stalls keeps it only until the server ends its idle transaction (state/bounds.py), and
        a waiter gives up after lock_timeout, both well within a lease.
        """
        if conn.dialect.name == "postgresql":
            conn.execute(_AUDIT_LOCKED, {"key": _AUDIT_LOCK})
        if fenced is not None:
            self._check_fence(conn, fenced)
        table = _AUDIT
        prev = conn.execute(_NEWEST_HASH).scalar() or GENESIS
        values = []
        for row in rows:
            row.claimed_by = self.claimed_by
            row.prev_hash = prev
            row.hash = prev = hash_of(prev, row)
            values.append({column.key: getattr(row, column.key) for column in table.columns if column.key != "id"})
        conn.execute(_AUDIT_INSERT, values)

    def verify_audit(self) -> tuple[int, AuditEvent | None]:
        """Walk the chain: (rows checked, the first row whose hash or link does not match, or None)."""
        prev, checked = GENESIS, 0
        with self.session() as s:
            for row in s.scalars(select(AuditEvent).order_by(AuditEvent.id).execution_options(yield_per=1000)):
                expected = hash_of(prev, row)
                if row.prev_hash != prev or row.hash != expected:
                    return checked, row
                prev, checked = expected, checked + 1
        return checked, None

    def events(self, *, secret: str | None = None, rotation_id: str | None = None) -> Sequence[AuditEvent]:
        query = select(AuditEvent).order_by(AuditEvent.id)
        if secret is not None:
            query = query.where(AuditEvent.secret == secret)
        if rotation_id is not None:
            query = query.where(AuditEvent.rotation_id == rotation_id)
        with self.session() as s:
            return s.scalars(query).all()

    @staticmethod
    def _event(
        rotation: Rotation,
        actor: str,
        event: str,
        from_state: str | None,
        to_state: str | None,
        detail: dict[str, Any],
        *,
        at: datetime | None = None,
    ) -> AuditEvent:
        return AuditEvent(
            rotation_id=rotation.id,
            secret=rotation.secret,
            at=at or utcnow(),
            actor=actor,
            event=event,
            from_state=from_state,
            to_state=to_state,
            detail=detail,
        )

    # step progress ---------------------------------------------------------------------------

    def step(self, rotation_id: str, step: str) -> StepProgress | None:
        with self.session() as s:
            return s.get(StepProgress, (rotation_id, step))

    def record_attempt(
        self, rotation_id: str, step: str, *, error: str | None, next_attempt_at: datetime | None
    ) -> StepProgress:
        now = self.clock()
        with self.session() as s:
            fence: Fence | None = getattr(_fences, "current", None)
            if fence is not None:
                self._check_fence(s.connection(), fence.secret)
            progress = s.get(StepProgress, (rotation_id, step))
            if progress is None:
                progress = StepProgress(rotation_id=rotation_id, step=step, started_at=now, attempts=0)
                s.add(progress)
            progress.attempts += 1
            progress.last_error = error
            progress.next_attempt_at = next_attempt_at
            if next_attempt_at is not None:
                s.execute(
                    update(Rotation)
                    .where(Rotation.id == rotation_id)
                    .values(next_attempt_at=next_attempt_at, updated_at=now)
                )
            s.flush()
            return progress

    def steps(self, rotation_id: str) -> Sequence[StepProgress]:
        with self.session() as s:
            return s.scalars(
                select(StepProgress).where(StepProgress.rotation_id == rotation_id).order_by(StepProgress.started_at)
            ).all()

    @staticmethod
    def _finish_steps(conn: Connection, rotation_id: str, finished: dict[str, datetime]) -> None:
        """Mark steps finished (step → when): rows of retried steps exist, the others are added."""
        conn.execute(
            _for_dialect(conn, _STEPS_FINISHED),
            [
                {"rotation_id": rotation_id, "step": step, "started_at": at, "attempts": 1, "finished_at": at}
                for step, at in finished.items()
            ],
        )

    # leases ------------------------------------------------------------------------------------

    @staticmethod
    def _now(conn: Connection) -> datetime:
        """The database's clock on PostgreSQL as the statement runs (clock_timestamp(), not the
        transaction's start: a transaction may have waited on a lock since); this host's on SQLite."""
        if conn.dialect.name == "postgresql":
            found = conn.execute(_DB_NOW).scalar()
            if isinstance(found, datetime):
                return found.astimezone(UTC)
        return utcnow()

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
            rotation = self._read(conn, rotation_id)
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
            now, postgres = self._now(conn), conn.dialect.name == "postgresql"
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
                if holder is not None and expires_at > now and not _holder_is_dead(holder):
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
                rotation = self._read(conn, rotation_id)
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
        now = self._now(conn)  # after the row lock: a wait for it must not age the new expiry
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
        if expires_at <= now or _holder_is_dead(holder):
            conn.execute(_LEASE_SET, {**key, "owner": owner, "expires_at": now + ttl, "generation": generation + 1})
            return int(generation) + 1
        until = expires_at.isoformat(timespec="seconds")
        raise LeaseHeld(f"secret {secret!r} is being advanced by {holder} (lease until {until})", retry_after=1.0)

    def heartbeat(self, owner: str, ttl: timedelta) -> int:
        """Say this replica is alive for `ttl` more; return how many replicas are alive (itself too).

        A lease named `replica:<owner>`, renewed every tick: replicas need no table of their own
        to count each other, and a dead one stops counting when its lease expires."""
        name = f"{REPLICA}{owner}"[:200]
        with self._tx() as conn:
            self._acquire(conn, name, owner, ttl)
            now, leases = self._now(conn), _LEASES
            alive = select(func.count()).where(leases.c.secret.startswith(REPLICA), leases.c.expires_at > now)
            return int(conn.execute(alive).scalar_one())

    def replicas_alive(self) -> int:
        """How many daemons renewed their heartbeat within its ttl (`rotator status` says when none)."""
        with self._tx() as conn:
            leases, now = _LEASES, self._now(conn)
            alive = select(func.count()).where(leases.c.secret.startswith(REPLICA), leases.c.expires_at > now)
            return int(conn.execute(alive).scalar_one())

    def farewell(self, owner: str) -> None:
        """This replica stops: the others count without it at once."""
        self.release_lease(f"{REPLICA}{owner}"[:200], owner)

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
            until = self._now(conn) - timedelta(seconds=1)
            conn.execute(_LEASE_RELEASE, {"of_secret": secret, "of_owner": owner, "until": until})

    # fencing ---------------------------------------------------------------------------------------

    @contextmanager
    def fenced(self, fence: Fence) -> Iterator[None]:
        """Within this block (this thread), every write of a rotation of `fence.secret` first checks,
        in its own transaction, that the lease is still held under `fence`; LeaseLost otherwise."""
        previous = getattr(_fences, "current", None)
        _fences.current = fence
        try:
            yield
        finally:
            _fences.current = previous

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
        return -1.0 if expires_at is None else (_aware(expires_at) - utcnow()).total_seconds()

    def _check_fence(self, conn: Connection, secret: str) -> None:
        """In a write's transaction, after any lock it takes: the lease still holds, or LeaseLost.
        The answer is a proof for the side effect that may follow the write (state/proofs.py)."""
        fence: Fence | None = getattr(_fences, "current", None)
        if fence is None or fence.secret != secret:
            return
        sent = time.monotonic()
        remaining = self._lease_remaining(conn, fence)
        if remaining <= 0:
            self._proofs.forget(fence)
            raise LeaseLost(f"secret {secret!r}: the lease (generation {fence.generation}) is no longer ours")
        if (ttl := self._proofs.ttl(fence)) is not None:
            self._proofs.record(fence, sent=sent, remaining=remaining, ttl=ttl)

    def check_fence(self, secret: str) -> None:
        """Right before a side effect that cannot be fenced (create, stage, promote, revoke, a hook):
        prove the lease is still ours, with at least half its TTL to run; LeaseLost otherwise.

        Answered from memory while the last proof — a write, a renewal — was asked for recently
        enough (counted from when it was sent, so an answer delayed on the way counts as old);
        else the lease is renewed now, and if even that answer came too late, nothing is done.
        """
        fence: Fence | None = getattr(_fences, "current", None)
        if fence is None or fence.secret != secret or self._proofs.fresh(fence):
            return
        ttl = self._proofs.ttl(fence)
        if ttl is None:
            raise LeaseLost(f"secret {secret!r}: the lease (generation {fence.generation}) was lost or let go")
        self.renew_lease(fence, ttl)
        if not self._proofs.fresh(fence):
            raise LeaseLost(f"secret {secret!r}: the lease could not be proven in time (the database answered late)")


@contextmanager
def _busy_as_held() -> Iterator[None]:
    """A wait the bounds cut short (state/bounds.py) is StateBusy, a kind of LeaseHeld: the caller
    stops and tries again later, as when another process holds the lease; the database is there."""
    try:
        yield
    except DBAPIError as exc:
        if bounds.cut_short(exc):
            raise StateBusy(f"the state database cut a wait short: {type(exc.orig).__name__}", retry_after=1.0) from exc
        raise


def _rowcount(result: Any) -> int:
    """Rows an UPDATE changed (a CursorResult; typed as plain Result by SQLAlchemy)."""
    return int(cast(CursorResult[Any], result).rowcount)


def _aware(value: datetime | str) -> datetime:
    """A timestamp as SQLite's text or a driver's datetime, as aware UTC."""
    parsed = datetime.fromisoformat(value) if isinstance(value, str) else value
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _holder_is_dead(owner: str) -> bool:
    """True only when the holder is provably gone: same boot and PID namespace as this process,
    and no process with its pid and start time. Anything else waits for the lease to expire."""
    parts = owner.split(":")
    if len(parts) != 6 or not parts[1].isdigit():
        return False
    host, pid, _, boot, namespace, started = parts
    if host != socket.gethostname() or boot != _boot_id() or namespace != _pid_namespace() or "?" in (boot, namespace):
        return False
    return _start_time(int(pid)) != started
