"""The state schema's version: checked at every start, upgraded by Alembic migrations.

A new database is created at the newest revision. An existing one must be at exactly the
revision this rotator knows (`HEAD`): an older one is upgraded only when asked to
(`rotator db upgrade`, or `state.auto_upgrade: true`), a newer one is refused — it belongs to
a newer rotator. A database without a version table is one made by rotator 0.1.0, the last
release before migrations; it counts as revision 0001. The check and the upgrade run in one
transaction under a lock (PostgreSQL advisory lock; SQLite's write lock), so replicas starting
together do not race.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Connection, Engine, inspect, text

from rotator.errors import SchemaMismatch

HEAD = "0005"
REVISIONS = ("0001", "0002", "0003", "0004", "0005")
"""Every revision, oldest first; a test checks this against the migration scripts."""
BASELINE = "0001"
_LOCK_KEY = 7_406_118_001  # any constant: all rotator processes agree on it
_SCRIPTS = Path(__file__).parent / "migrations"


def revision_of(conn: Connection) -> str | None:
    """The database's revision; BASELINE for a 0.1.0 database; None for an empty one."""
    tables = set(inspect(conn).get_table_names())
    if "alembic_version" in tables:
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    return BASELINE if "rotations" in tables else None


def _run_upgrade(conn: Connection, *, from_revision: str | None) -> None:
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(_SCRIPTS))
    cfg.attributes["connection"] = conn
    if from_revision == BASELINE and "alembic_version" not in inspect(conn).get_table_names():
        command.stamp(cfg, BASELINE)
    command.upgrade(cfg, HEAD)


def ensure(engine: Engine, *, upgrade: bool) -> str:
    """Bring a new database to HEAD; check (and with `upgrade`, upgrade) an existing one.

    Returns the revision the database was at. Raises SchemaMismatch naming the fix.
    """
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # the bounds of a rotation's transactions (state/bounds.py) are not an upgrade's: it may
            # wait for another replica's upgrade, and rewrite a large table
            conn.execute(text("SET LOCAL statement_timeout = 0; SET LOCAL lock_timeout = 0"))
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
        found = revision_of(conn)
        if found == HEAD:
            return found
        if found is not None and found not in REVISIONS:
            raise SchemaMismatch(
                f"the state database is at schema revision {found}, newer than this rotator knows ({HEAD}); "
                "run the rotator release that upgraded it"
            )
        if found is not None and not upgrade:
            raise SchemaMismatch(
                f"the state database is at schema revision {found}, this rotator needs {HEAD}; "
                "back it up, then run `rotator db upgrade` (or set state.auto_upgrade: true)"
            )
        _run_upgrade(conn, from_revision=found)
        return found or "none"
