"""Rotation windows that cross midnight (`22:00-04:00`), in several zones, across DST changes: a
window belongs to the day it opens on, and opens and closes at its wall-clock times that night,
however long that night is. (concepts.md: `window` is when to *start* a rotation.)"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from rotator.daemon.schedule import plan
from rotator.policy.rules import Policy
from rotator.policy.windows import Window


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("when", "inside"),
    [
        (utc(2026, 11, 27, 20, 59), False),  # Fri 21:59 Berlin (CET, +1): not yet
        (utc(2026, 11, 27, 21, 0), True),  # Fri 22:00: opens
        (utc(2026, 11, 27, 23, 30), True),  # Sat 00:30: Friday's window, after midnight
        (utc(2026, 11, 28, 2, 59), True),  # Sat 03:59
        (utc(2026, 11, 28, 3, 0), False),  # Sat 04:00: closed
        (utc(2026, 11, 28, 21, 30), False),  # Sat 22:30: Saturday has no window
        (utc(2026, 11, 30, 0, 30), False),  # Mon 01:30: Sunday's window would hold it, Sunday has none
        (utc(2026, 11, 30, 21, 0), True),  # Mon 22:00
    ],
)
def test_window_across_midnight_belongs_to_the_day_it_opens(when: datetime, inside: bool) -> None:
    assert Window.parse("Mon-Fri 22:00-04:00 Europe/Berlin").contains(when) is inside


@pytest.mark.parametrize(
    ("window", "after", "opens", "closes"),
    [
        # Berlin springs forward on Sun 29 Mar 2026 (02:00 CET -> 03:00 CEST): a five-hour night
        ("Sat 22:00-04:00 Europe/Berlin", utc(2026, 3, 28, 12), utc(2026, 3, 28, 21), utc(2026, 3, 29, 2)),
        # and falls back on Sun 25 Oct 2026 (03:00 CEST -> 02:00 CET): a seven-hour night
        ("Sat 22:00-04:00 Europe/Berlin", utc(2026, 10, 24, 12), utc(2026, 10, 24, 20), utc(2026, 10, 25, 3)),
        # New York springs forward on Sun 8 Mar 2026 (02:00 EST -> 03:00 EDT)
        ("Sat 22:00-04:00 America/New_York", utc(2026, 3, 7, 12), utc(2026, 3, 8, 3), utc(2026, 3, 8, 8)),
        # Sydney falls back on Sun 5 Apr 2026 (03:00 AEDT -> 02:00 AEST)
        ("Sat 22:00-04:00 Australia/Sydney", utc(2026, 4, 4, 0), utc(2026, 4, 4, 11), utc(2026, 4, 4, 18)),
        # no DST, a half-hour offset: Fri 22:00 IST is 16:30 UTC
        ("Fri 22:00-04:00 Asia/Kolkata", utc(2026, 6, 5, 0), utc(2026, 6, 5, 16, 30), utc(2026, 6, 5, 22, 30)),
    ],
)
def test_window_across_midnight_and_a_dst_change_opens_and_closes_at_its_wall_clock_times(
    window: str, after: datetime, opens: datetime, closes: datetime
) -> None:
    w = Window.parse(window)
    assert w.occurrence(after) == (opens, closes)
    assert w.next_start(after) == opens
    assert w.contains(opens) and w.contains(closes - timedelta(minutes=1))
    assert not w.contains(opens - timedelta(minutes=1)) and not w.contains(closes)
    inside = opens + (closes - opens) / 2
    assert w.next_start(inside) == inside and w.occurrence(inside) == (opens, closes)


def test_a_window_that_closed_is_next_open_a_week_later() -> None:
    w = Window.parse("Sat 22:00-04:00 UTC")
    assert w.next_start(utc(2026, 11, 29, 4, 0)) == utc(2026, 12, 5, 22, 0)
    assert w.occurrence(utc(2026, 11, 29, 3, 59)) == (utc(2026, 11, 28, 22), utc(2026, 11, 29, 4))


def test_a_window_across_midnight_and_the_end_of_the_week() -> None:
    """Sun 22:00 to Mon 04:00: the week wraps, Monday's early hours are Sunday's window."""
    w = Window.parse("Sun 22:00-04:00 UTC")
    assert w.contains(utc(2026, 11, 30, 3, 0))  # Monday 03:00
    assert not w.contains(utc(2026, 12, 1, 3, 0))  # Tuesday 03:00
    assert w.next_start(utc(2026, 12, 1, 12)) == utc(2026, 12, 6, 22)


@pytest.mark.parametrize(("days", "expected"), [("Fri-Mon", {4, 5, 6, 0}), ("Sat,Mon-Tue", {5, 0, 1})])
def test_day_ranges_wrap_the_week(days: str, expected: set[int]) -> None:
    assert Window.parse(f"{days} 22:00-04:00 UTC").days == frozenset(expected)


def test_a_rotation_due_in_the_evening_starts_in_that_nights_window() -> None:
    policy = Policy(max_age=timedelta(days=30), window="Mon-Fri 22:00-04:00 America/New_York")
    now = utc(2026, 3, 6, 12)  # Friday, before DST starts on Sunday
    p = plan("app", "monthly", policy, last_rotated=now - timedelta(days=31), now=now)
    assert p.next_start == utc(2026, 3, 7, 3)  # Fri 22:00 EST
    assert not p.startable(now) and p.startable(utc(2026, 3, 7, 8, 59))
