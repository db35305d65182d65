"""The database's clock as a process carries it, and the bounds put on every PostgreSQL wait."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from rotator.state import bounds
from rotator.state.clock import DatabaseClock

FAR = datetime(2001, 1, 1, tzinfo=UTC)


def test_the_database_clock_is_carried_by_the_monotonic_clock_not_the_hosts() -> None:
    """Read once (a database 25 years behind this host): later readings count from it, whatever
    this host's wall clock says."""
    reads: list[datetime] = []
    db_clock = DatabaseClock(lambda: reads.append(FAR) or FAR)
    first = db_clock.now()
    time.sleep(0.2)
    second = db_clock.now()
    assert len(reads) == 1
    assert timedelta(0) <= first - FAR < timedelta(seconds=1)
    assert timedelta(seconds=0.2) <= second - first < timedelta(seconds=1)


def test_a_database_away_at_a_resync_leaves_the_last_reading_in_force() -> None:
    answers = [FAR]

    def read() -> datetime:
        if not answers:
            raise ConnectionError("the database is away")
        return answers.pop()

    db_clock = DatabaseClock(read, resync=0.0)  # every reading is due for a resync
    before = db_clock.now()
    assert db_clock.now() >= before
    with pytest.raises(ConnectionError):
        DatabaseClock(read).now()  # never read at all: nothing to go on


@pytest.mark.parametrize("ttl", [timedelta(seconds=6), timedelta(minutes=2), timedelta(hours=1)])
def test_every_wait_on_postgresql_is_bounded_below_the_lease(ttl: timedelta) -> None:
    args = bounds.connect_args(ttl)
    settings = dict(option.split("=") for option in args["options"].replace("-c ", "").split())
    limit = ttl.total_seconds() * 1000
    assert set(settings) == {"lock_timeout", "statement_timeout", "idle_in_transaction_session_timeout"}
    assert all(0 < int(ms) < limit for ms in settings.values()), settings
    assert int(settings["idle_in_transaction_session_timeout"]) < int(settings["lock_timeout"])
    assert args["tcp_user_timeout"] < limit
    assert (args["keepalives_idle"] + args["keepalives_count"] * args["keepalives_interval"]) * 1000 < limit
