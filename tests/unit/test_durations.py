"""Times and durations as rotator writes them for people."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from rotator.durations import moment, parse, render

ZONES = st.sampled_from([None, UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-11))])


@given(st.datetimes(min_value=datetime(1000, 1, 2), max_value=datetime(9999, 12, 30)), ZONES)
def test_a_moment_is_its_utc_time_to_the_second(value: datetime, zone: timezone | None) -> None:
    value = value.replace(tzinfo=zone)
    utc = value.replace(tzinfo=UTC) if zone is None else value.astimezone(UTC)  # naive: UTC already
    assert moment(value) == utc.strftime("%Y-%m-%d %H:%M:%S UTC")


@given(st.integers(min_value=1, max_value=10 * 365 * 86400))
def test_a_rendered_duration_parses_back(seconds: int) -> None:
    assert parse(render(timedelta(seconds=seconds))) == timedelta(seconds=seconds)
    assert render(timedelta(days=90)) == "90d" and render(timedelta(milliseconds=1500)) == "1500ms"
