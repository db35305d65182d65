"""The audit trail cannot be rewritten by rotator's own runtime role, and tampering is found."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy
from sqlalchemy import text
from sqlalchemy.exc import DatabaseError

from rotator.state.db import StateDB

ROLES = Path(__file__).parent.parent.parent / "deploy" / "postgres" / "roles.sql"


@pytest.fixture
def two_roles(postgres_url: str) -> Iterator[tuple[str, str]]:
    """A database owned by rotator_owner (migrations) with rotator_runtime granted as README says."""
    base = postgres_url.rsplit("/", 1)[0]
    admin = sqlalchemy.create_engine(f"{base}/postgres", isolation_level="AUTOCOMMIT")
    name = f"rotator_roles_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(text(ROLES.read_text().split("GRANT USAGE")[0]))  # the roles themselves
        conn.execute(text(f"CREATE DATABASE {name} OWNER rotator_owner"))
    owner_url = base.replace("postgres@", "rotator_owner@") + f"/{name}"
    runtime_url = base.replace("postgres@", "rotator_runtime@") + f"/{name}"
    StateDB(owner_url).close()  # the migrations, as the owner
    grants = sqlalchemy.create_engine(owner_url, isolation_level="AUTOCOMMIT")
    with grants.connect() as conn:
        conn.execute(text(ROLES.read_text()))
    grants.dispose()
    yield owner_url, runtime_url
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE {name} WITH (FORCE)"))
    admin.dispose()


def test_the_runtime_role_appends_but_cannot_rewrite_the_audit(two_roles: tuple[str, str]) -> None:
    _, runtime_url = two_roles
    runtime = StateDB(runtime_url)
    rotation = runtime.create_rotation(secret="s", provider="p", policy="x", trigger="manual", reason="r", actor="t")
    runtime.audit(rotation, secret="s", actor="t", event="something")
    for statement in (
        "UPDATE audit_events SET actor = 'mallory'",
        "DELETE FROM audit_events",
        "TRUNCATE audit_events",
        "ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only",
        "DROP TRIGGER audit_events_append_only ON audit_events",
        "ALTER TABLE audit_events ADD COLUMN x int",
    ):
        with (
            pytest.raises(DatabaseError, match=r"permission denied|must be owner|append-only"),
            runtime.engine.begin() as conn,
        ):
            conn.execute(text(statement))
    assert runtime.verify_audit() == (2, None)
    runtime.close()


def test_the_runtime_role_may_do_all_rotator_does_to_every_table(two_roles: tuple[str, str]) -> None:
    """roles.sql granted nothing on leftover_keys and notification_outbox: `status` and `reconcile`
    died with "permission denied" as the runtime role, and a notification failed its rotation."""
    from rotator.state.schema import Base

    owner = sqlalchemy.create_engine(two_roles[0])
    with owner.connect() as conn:
        for table in Base.metadata.sorted_tables:
            wanted = ("SELECT", "INSERT") if table.name == "audit_events" else ("SELECT", "INSERT", "UPDATE", "DELETE")
            for privilege in wanted:
                granted = conn.execute(
                    text("SELECT has_table_privilege('rotator_runtime', :t, :p)"), {"t": table.name, "p": privilege}
                ).scalar()
                assert granted, f"rotator_runtime lacks {privilege} on {table.name}"
            for column in table.columns:
                if column.autoincrement is True:
                    sequence = f"{table.name}_{column.name}_seq"
                    usage = conn.execute(
                        text("SELECT has_sequence_privilege('rotator_runtime', :s, 'USAGE')"), {"s": sequence}
                    ).scalar()
                    assert usage, f"rotator_runtime lacks USAGE on {sequence}"
    owner.dispose()


def test_even_the_owner_cannot_truncate_the_audit(two_roles: tuple[str, str]) -> None:
    owner = StateDB(two_roles[0])
    owner.audit(None, secret="s", actor="t", event="something")
    with pytest.raises(DatabaseError, match="append-only"), owner.engine.begin() as conn:
        conn.execute(text("TRUNCATE audit_events"))
    owner.close()


def test_audit_verify_names_the_first_rewritten_row(tmp_path: Path) -> None:
    """On SQLite the file's owner can drop the trigger; the hash chain still shows the rewrite."""
    url = f"sqlite:///{tmp_path}/state.db"
    state = StateDB(url)
    for n in range(5):
        state.audit(None, secret="s", actor="t", event=f"e{n}")
    assert state.verify_audit() == (5, None)
    with sqlite3.connect(tmp_path / "state.db") as conn:
        conn.execute("DROP TRIGGER audit_events_no_update")
        conn.execute("UPDATE audit_events SET actor = 'mallory' WHERE event = 'e2'")
    checked, bad = state.verify_audit()
    assert checked == 2 and bad is not None and bad.event == "e2"
    config = tmp_path / "rotator.yaml"
    config.write_text(f'state: {{url: "{url}"}}\n')
    result = subprocess.run(
        [sys.executable, "-m", "rotator", "--config", str(config), "audit", "verify"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1 and f"broken at row {bad.id}" in result.stdout
    state.close()


def test_the_actor_is_the_effective_user_not_logname(tmp_path: Path) -> None:
    """LOGNAME/USER are anyone's to set; the recorded actor is the uid's name, sudo's caller only a claim."""
    import pwd

    from rotator.app import actor_name

    me = pwd.getpwuid(os.geteuid()).pw_name
    env = {**os.environ, "LOGNAME": "alice", "USER": "alice", "SUDO_USER": "bob"}
    code = "from rotator.app import actor_name; print(actor_name())"
    shown = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert shown.startswith(f"cli:{me}@") and "alice" not in shown
    assert actor_name().startswith(f"cli:{me}@")
    os.environ["SUDO_USER"] = "bob"
    try:
        state = StateDB(f"sqlite:///{tmp_path}/s.db")
    finally:
        del os.environ["SUDO_USER"]
    state.audit(None, secret="s", actor=actor_name(), event="e")
    row = state.events(secret="s")[0]
    assert row.actor.startswith(f"cli:{me}@") and row.claimed_by == "bob"
    assert state.verify_audit() == (1, None)
    state.close()
