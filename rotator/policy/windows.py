"""Rotation windows: "Mon-Fri 02:00-05:00 Europe/Berlin" — days, a time range, a named time zone."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
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
        local = when.astimezone(self.zone)
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
        """(start, end) of the window occurrence that contains `after`, or else the next one."""
        for start, end in _occurrences(self, after.astimezone(self.zone).date()):
            if after < end:
                return start, end
        raise ValueError("window has no days")  # unreachable: parse() requires at least one day

    def next_start(self, after: datetime) -> datetime:
        """The first instant at or after `after` that lies inside the window."""
        return max(self.occurrence(after)[0], after)


@functools.lru_cache(maxsize=4096)
def _occurrences(window: Window, day: date) -> tuple[tuple[datetime, datetime], ...]:
    """The window's occurrences from the day before `day` to eight days after: a tick plans a whole
    fleet, whose due dates fall on a few hundred days, and made these anew for every secret."""
    found = []
    for offset in range(-1, 9):
        other = day + timedelta(days=offset)
        if other.weekday() in window.days:
            start = datetime.combine(other, window.start, tzinfo=window.zone)
            found.append((start, start + window.length))
    return tuple(found)
