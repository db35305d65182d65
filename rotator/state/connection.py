"""The connection to the state database: the engine (SQLite's one writer, PostgreSQL's bounded
waits and idle pings), the database's clock, and errors that say which database and why."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    Connection,
    CursorResult,
    Engine,
    create_engine,
    event,
    func,
    select,
)
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.orm import Session, sessionmaker

from rotator.errors import StateBusy, StateUnavailable
from rotator.state import bounds, migrate
from rotator.state.clock import DatabaseClock, utcnow
from rotator.state.proofs import Proofs


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


def for_dialect(conn: Connection, statements: dict[str, Any]) -> Any:
    """The statement of `statements` ({"postgresql": …, "sqlite": …}) that `conn`'s database speaks."""
    return statements["postgresql" if conn.dialect.name == "postgresql" else "sqlite"]


@contextmanager
def busy_as_held() -> Iterator[None]:
    """A wait the bounds cut short (state/bounds.py) is StateBusy, a kind of LeaseHeld: the caller
    stops and tries again later, as when another process holds the lease; the database is there."""
    try:
        yield
    except DBAPIError as exc:
        if bounds.cut_short(exc):
            raise StateBusy(f"the state database cut a wait short: {type(exc.orig).__name__}", retry_after=1.0) from exc
        raise


def rowcount(result: Any) -> int:
    """Rows an UPDATE changed (a CursorResult; typed as plain Result by SQLAlchemy)."""
    return int(cast(CursorResult[Any], result).rowcount)


def aware(value: datetime | str) -> datetime:
    """A timestamp as SQLite's text or a driver's datetime, as aware UTC."""
    parsed = datetime.fromisoformat(value) if isinstance(value, str) else value
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


_DB_NOW = select(func.clock_timestamp())


def db_now(conn: Connection) -> datetime:
    """The database's clock on PostgreSQL as the statement runs (clock_timestamp(), not the
    transaction's start: a transaction may have waited on a lock since); this host's on SQLite."""
    if conn.dialect.name == "postgresql":
        found = conn.execute(_DB_NOW).scalar()
        if isinstance(found, datetime):
            return found.astimezone(UTC)
    return utcnow()


class Database:
    """The connection to the state database that each concern below builds on: its engine,
    sessions and clock; each method of a concern is one short transaction."""

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
            return db_now(conn)

    @contextmanager
    def session(self) -> Iterator[Session]:
        with busy_as_held(), self._sessions.begin() as session:
            yield session

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        """A transaction without the ORM's unit of work, for a rotation's steps: nine a rotation,
        each of a few statements, where a session's bookkeeping cost more than its SQL."""
        with busy_as_held(), self.engine.begin() as conn:
            yield conn

    def close(self) -> None:
        self.engine.dispose()
