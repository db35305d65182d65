"""Rotation windows: "Mon-Fri 02:00-05:00 Europe/Berlin" — days, a time range, a named time zone."""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
_FORM = re.compile(
    r"^\s*(?P<days>[A-Za-z]{3}(?:-[A-Za-z]{3})?(?:,[A-Za-z]{3}(?:-[A-Za-z]{3})?)*)\s+"
    r"(?P<start>\d{2}:\d{2})-(?P<end>\d{2}:\d{2})\s+(?P<tz>\S+)\s*$"
)


@dataclass(frozen=True)
class Window:
    days: frozenset[int]
    start: time
    end: time
    zone: ZoneInfo

    @classmethod
    def parse(cls, text: str) -> Window:
        """Parse a window; raise ValueError saying which part is wrong and the expected form."""
        form = "expected e.g. 'Mon-Fri 02:00-05:00 Europe/Berlin'"
        match = _FORM.match(text)
        if not match:
            raise ValueError(f"bad window {text!r}: {form}")
        days: set[int] = set()
        for part in match["days"].lower().split(","):
            first, _, last = part.partition("-")
            if first not in _DAYS or (last and last not in _DAYS):
                raise ValueError(f"bad window {text!r}: unknown day in {part!r}; days are Mon..Sun")
            a, b = _DAYS.index(first), _DAYS.index(last or first)
            days.update(range(a, b + 1) if a <= b else [*range(a, 7), *range(0, b + 1)])
        try:
            start, end = time.fromisoformat(match["start"]), time.fromisoformat(match["end"])
        except ValueError:
            raise ValueError(f"bad window {text!r}: times are HH:MM, 00:00-23:59") from None
        if start == end:
            raise ValueError(f"bad window {text!r}: it starts and ends at {start:%H:%M}, so it is never open")
        try:
            zone = ZoneInfo(match["tz"])
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"bad window {text!r}: unknown time zone {match['tz']!r}") from None
        return cls(frozenset(days), start, end, zone)

    def contains(self, when: datetime) -> bool:
        # through UTC: a time of this zone that its clock skips (02:30 on a spring-forward night)
        # becomes the instant it stands for, rather than a wall time read as it is
        local = when.astimezone(UTC).astimezone(self.zone)
        t = local.time()
        if self.start <= self.end:
            return local.weekday() in self.days and self.start <= t < self.end
        # a window across midnight belongs to the day it starts on
        if t >= self.start:
            return local.weekday() in self.days
        return (local - timedelta(days=1)).weekday() in self.days and t < self.end

    @functools.cached_property
    def length(self) -> timedelta:
        start = timedelta(hours=self.start.hour, minutes=self.start.minute)
        end = timedelta(hours=self.end.hour, minutes=self.end.minute)
        return end - start if end > start else end - start + timedelta(days=1)

    def occurrence(self, after: datetime) -> tuple[datetime, datetime]:
        """(start, end) of the window occurrence that contains `after`, or else the next one, in UTC:
        two times of one zone compare and add by their wall clocks, which a clock change makes
        wrong by its hour (an end at 03:00 after the jump compared as later than 02:00:15 before)."""
        for start, end in _occurrences(self, after.astimezone(self.zone).date()):
            if after < end:
                return start, end
        raise ValueError("window has no days")  # unreachable: parse() requires at least one day

    def next_start(self, after: datetime) -> datetime:
        """The first instant at or after `after` that lies inside the window."""
        return max(self.occurrence(after)[0], after)


@functools.lru_cache(maxsize=4096)
def _occurrences(window: Window, day: date) -> tuple[tuple[datetime, datetime], ...]:
    """The window's occurrences from the day before `day` to fifteen days after (a weekly window's
    occurrence may fall in the hour a clock skips: the next is a week later). Cached: a tick plans
    a whole fleet, whose due dates fall on a few hundred days, and made these anew for every secret."""
    found: list[tuple[datetime, datetime]] = []
    for offset in range(-1, 16):
        other = day + timedelta(days=offset)
        if other.weekday() in window.days:
            found.extend(_stretches(window, other))
    merged: list[tuple[datetime, datetime]] = []
    for begins, ends in sorted(found):  # a night the clocks change, two days' stretches may meet
        if merged and begins <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(ends, merged[-1][1]))
        else:
            merged.append((begins, ends))
    return tuple(merged)


def _stretches(window: Window, day: date) -> list[tuple[datetime, datetime]]:
    """The window's occurrence that opens on `day`, in UTC, as `contains` reads the window (by the
    wall clock), so that no start falls outside it: none where it lies in the hour a clock skips;
    where springing forward passes its end, it ends at the jump (the start plus the length in wall
    time made `01:00-02:30` end at 03:30 there, an hour late); where a clock set back takes the
    wall clock out of it and in again (or back into it after its end), two stretches."""
    zone = window.zone
    start = _reached(day, window.start, zone)
    end_day = day if window.start < window.end else day + timedelta(days=1)
    end = _reached(end_day, window.end, zone)
    # a clock set back repeats the end's hour: the wall clock may come back inside until it reads
    # the end the second time
    last = max(end, datetime.combine(end_day, window.end, tzinfo=zone).replace(fold=1).astimezone(UTC))
    offset = start.astimezone(zone).utcoffset()
    if last.astimezone(zone).utcoffset() == offset:
        return [(start, end)] if start < end else []
    change = datetime.fromtimestamp(
        _first(int(start.timestamp()), int(last.timestamp()), lambda t: _at(t, zone).utcoffset() != offset), UTC
    )
    # `contains` changes only at the change or where the wall clock reads the window's start or
    # end (either time of a repeated hour): between two such moments it holds or not throughout
    local = change.astimezone(zone).date()
    moments = {start, end, last, change} | {
        datetime.combine(local + timedelta(days=days), wall, tzinfo=zone).replace(fold=fold).astimezone(UTC)
        for days in (-1, 0, 1)
        for wall in (window.start, window.end)
        for fold in (0, 1)
    }
    found: list[tuple[datetime, datetime]] = []
    for begins, ends in itertools.pairwise(sorted(t for t in moments if start <= t <= last)):
        if window.contains(begins):
            if found and found[-1][1] == begins:
                found[-1] = (found[-1][0], ends)
            else:
                found.append((begins, ends))
    return found


def _reached(day: date, at: time, zone: ZoneInfo) -> datetime:
    """The first instant the wall clock of `zone` reads `at` on `day`, or later (in UTC): `at`
    itself, or, where the clock jumps over it (spring forward), the jump."""
    wall = datetime.combine(day, at, tzinfo=zone)
    after = wall.astimezone(UTC)  # a time the clock skips is read with the offset before the jump
    if after.astimezone(zone).replace(tzinfo=None) == wall.replace(tzinfo=None):
        return after
    naive = wall.replace(tzinfo=None)
    before = int(wall.replace(fold=1).timestamp())  # read with the offset after the jump: before it
    jump = _first(before, int(after.timestamp()), lambda t: _at(t, zone).replace(tzinfo=None) >= naive)
    return datetime.fromtimestamp(jump, UTC)


def _at(timestamp: int, zone: ZoneInfo) -> datetime:
    return datetime.fromtimestamp(timestamp, zone)


def _first(low: int, high: int, came: Callable[[int], bool]) -> int:
    """The first second in (low, high] at which `came` holds (false at low, true at high and ever
    after): a clock change, found in some twenty steps."""
    while high - low > 1:
        middle = (low + high) // 2
        if came(middle):
            high = middle
        else:
            low = middle
    return high
