"""Replicas starting together on a new PostgreSQL database (concepts.md, "State database and its
schema"): the schema is created once, under the advisory lock, and every replica starts. The test
holds the lock itself while the replicas start, sees every one of them wait for it (pg_locks: an
event, not a delay), then lets go."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import sqlalchemy
from sqlalchemy import text

from rotator.state import migrate
from rotator.state.db import StateDB

REPLICAS = 4


@pytest.fixture
def raw(own_postgres_url: str) -> Iterator[sqlalchemy.Engine]:
    engine = sqlalchemy.create_engine(own_postgres_url)
    yield engine
    engine.dispose()


def test_replicas_starting_together_on_a_new_database_create_the_schema_once(
    own_postgres_url: str, raw: sqlalchemy.Engine
) -> None:
    started: list[StateDB] = []
    errors: list[BaseException] = []

    def replica() -> None:
        try:
            started.append(StateDB(own_postgres_url))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=replica) for _ in range(REPLICAS)]
    with raw.connect() as holder:
        holder.execute(text("SELECT pg_advisory_lock(:key)"), {"key": migrate._LOCK_KEY})
        for t in threads:
            t.start()
        with raw.connect() as eyes:
            waiting = 0
            while waiting < REPLICAS:
                assert any(t.is_alive() for t in threads), f"replicas went on without the schema lock: {errors}"
                waiting = eyes.execute(
                    text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
                ).scalar_one()
                eyes.rollback()
        assert not started and not errors  # nobody made or read the schema while the lock was held
        holder.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": migrate._LOCK_KEY})
        holder.commit()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert len(started) == REPLICAS
    assert sorted(db.schema_was for db in started) == [migrate.HEAD] * (REPLICAS - 1) + ["none"]  # made once
    with raw.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == [migrate.HEAD]
    for db in started:
        db.close()
