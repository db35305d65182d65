"""The state schema evolves by migration: a database of the previous release upgrades with its
rotations in flight; an older or newer schema is refused with the command that fixes it."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path
from typing import Any

import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, text

from rotator.errors import SchemaMismatch
from rotator.state import migrate
from rotator.state.db import StateDB
from tests.support.world import World

OLD_SCHEMA = Path(__file__).parent.parent / "data" / "schema-0.1.0.sqlite.sql"
OLD_ROTATION_COLUMNS = [
    line.split()[0].strip('"')
    for line in OLD_SCHEMA.read_text().split("CREATE TABLE rotations (")[1].split("PRIMARY KEY")[0].splitlines()
    if line.strip()
]
OLD_AUDIT_COLUMNS = ["rotation_id", "secret", "at", "actor", "event", "from_state", "to_state", "detail"]


def test_the_revision_list_matches_the_migration_scripts() -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(migrate.__file__).parent / "migrations"))
    scripts = ScriptDirectory.from_config(cfg)
    assert scripts.get_current_head() == migrate.HEAD
    assert [s.revision for s in reversed(list(scripts.walk_revisions()))] == list(migrate.REVISIONS)


def test_the_baseline_migration_makes_the_0_1_0_schema(tmp_path: Path) -> None:
    """Revision 0001 is exactly what rotator 0.1.0's create_all made, so 0.1.0 databases count as 0001."""
    old = sqlite3.connect(tmp_path / "old.db")
    old.executescript(OLD_SCHEMA.read_text())
    engine = create_engine(f"sqlite:///{tmp_path}/new.db")
    with engine.begin() as conn:
        from alembic import command

        cfg = Config()
        cfg.set_main_option("script_location", str(Path(migrate.__file__).parent / "migrations"))
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, migrate.BASELINE)
    new = sqlite3.connect(tmp_path / "new.db")

    def shape(db: sqlite3.Connection) -> dict[str, Any]:
        tables = [
            r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'") if r[0] != "alembic_version"
        ]
        return {
            "columns": {
                t: [(c[1], c[2].upper(), c[3], c[5]) for c in db.execute(f"PRAGMA table_info({t})")] for t in tables
            },
            "indexes": sorted(
                r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='index' AND sql IS NOT NULL")
            ),
            "triggers": sorted(r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='trigger'")),
        }

    assert shape(new) == shape(old)


def _old_database(url: str, tmp_path: Path) -> None:
    """A database exactly as rotator 0.1.0 left it: its schema, no version table."""
    if url.startswith("sqlite"):
        sqlite3.connect(url.removeprefix("sqlite:///")).executescript(OLD_SCHEMA.read_text())
        return
    engine = create_engine(url)
    with engine.begin() as conn:
        from alembic import command

        cfg = Config()
        cfg.set_main_option("script_location", str(Path(migrate.__file__).parent / "migrations"))
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, migrate.BASELINE)
        conn.execute(text("DROP TABLE alembic_version"))
    engine.dispose()


def _fresh_database(url: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """An empty database on the same backend as `url` (dropped after the test)."""
    name = f"old_{uuid.uuid4().hex[:8]}"
    if url.startswith("sqlite"):
        return f"sqlite:///{tmp_path}/{name}.db"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE {name} WITH (FORCE)"))
        admin.dispose()

    request.addfinalizer(drop)
    return url.rsplit("/", 1)[0] + f"/{name}"


def _transplant(source: StateDB, url: str, rotation_id: str) -> None:
    """Copy one rotation and its audit trail into a 0.1.0 database, in 0.1.0's columns."""
    target = create_engine(url)
    with source.engine.connect() as src, target.begin() as dst:
        row = src.execute(text("SELECT * FROM rotations WHERE id = :id"), {"id": rotation_id}).mappings().one()
        values = {c: row[c] for c in OLD_ROTATION_COLUMNS}
        cols = ", ".join(f'"{c}"' for c in values)
        dst.execute(text(f"INSERT INTO rotations ({cols}) VALUES ({', '.join(':' + c for c in values)})"), values)
        for event in src.execute(
            text("SELECT * FROM audit_events WHERE rotation_id = :id ORDER BY id"), {"id": rotation_id}
        ).mappings():
            ev = {c: event[c] for c in OLD_AUDIT_COLUMNS}
            dst.execute(
                text(f"INSERT INTO audit_events ({', '.join(ev)}) VALUES ({', '.join(':' + c for c in ev)})"), ev
            )
    target.dispose()


def test_a_0_1_0_database_with_a_rotation_in_flight_upgrades_and_the_rotation_completes(
    world: World, state_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Refused until `rotator db upgrade`; then the rotation waiting at the gate resumes and completes."""
    policy = world.dir / "policies" / "main.yaml"
    policy.write_text(policy.read_text().replace("min_soak: 0s", "min_soak: 1h"))
    app = world.app()
    rotation = app.db.create_rotation(
        secret=world.name, provider="bw", policy="fast", trigger="manual", reason="t", actor="t"
    )
    waiting = app.runner("t").run(rotation.id, follow=False)
    assert waiting.state == "cutover_wait"
    state_url = _fresh_database(state_url, tmp_path, request)
    _old_database(state_url, tmp_path)
    _transplant(app.db, state_url, rotation.id)
    world.config.write_text(world.config.read_text().replace(f"sqlite:///{world.dir}/state.db", state_url))

    with pytest.raises(SchemaMismatch, match="rotator db upgrade"):
        StateDB(state_url)
    refused = world.cli("status")
    assert refused.returncode == 2 and "rotator db upgrade" in refused.stderr and "Traceback" not in refused.stderr

    upgraded = world.cli("db", "upgrade")
    assert upgraded.returncode == 0 and "from 0001 to" in upgraded.stdout, upgraded.stderr
    assert world.cli("audit", "verify").returncode == 0

    policy.write_text(policy.read_text().replace("min_soak: 1h", "min_soak: 0s"))
    resumed = world.cli("rotate", world.name)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"resuming rotation {rotation.id}" in resumed.stdout
    assert world.probe(world.first["token"]) == 401
    assert world.current()["rotation_id"] == rotation.id


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/s.db"
    StateDB(url).close()
    with sqlite3.connect(tmp_path / "s.db") as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999'")
    with pytest.raises(SchemaMismatch, match="newer than this rotator"):
        StateDB(url, upgrade=True)


def test_auto_upgrade_upgrades_at_start(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/s.db"
    sqlite3.connect(tmp_path / "s.db").executescript(OLD_SCHEMA.read_text())
    state = StateDB(url, upgrade=True)
    assert state.schema_was == "0001"
    state.close()
    StateDB(url).close()
