"""Durations as people write them in policy files: 90d, 2h, 15m, 0s, 1h30m.

A duration always has a unit — a bare number is refused rather than taken as seconds (`90`
would otherwise mean 90 seconds to someone who meant 90 days). Digits are ASCII only, and a
duration is at most ten years: anything longer is a typo, and would overflow `timedelta`.
`Duration` may be zero (`min_soak: 0s`); `PositiveDuration` may not (`max_age`, `tick`, timeouts).
"""

from __future__ import annotations

import functools
import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, PlainSerializer

_PART = re.compile(r"([0-9]{1,12}(?:\.[0-9]{1,9})?)(ms|s|m|h|d|w)", re.ASCII)
_UNIT = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
MAX = timedelta(days=3650)
_FORM = "write a number and a unit (ms, s, m, h, d, w), e.g. 90d or 1h30m"


def parse(text: str) -> timedelta:
    """Parse `90d`, `1h30m`, `0s`; raise ValueError naming the accepted form."""
    compact = text.strip().replace(" ", "")
    if not compact or _PART.sub("", compact):
        raise ValueError(f"bad duration {text!r}: {_FORM}")
    seconds = sum(float(n) * _UNIT[u] for n, u in _PART.findall(compact))
    if seconds > MAX.total_seconds():
        raise ValueError(f"bad duration {text!r}: at most {render(MAX)}")
    return timedelta(seconds=seconds)


def _coerce(value: Any) -> Any:
    if isinstance(value, bool | int | float):
        raise ValueError(f"bad duration {value!r}: a bare number has no unit; {_FORM}")
    if isinstance(value, str):
        return parse(value)
    return value


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError(f"must be longer than 0s (got {render(value)})")
    return value


def moment(value: datetime) -> str:
    """A time as people read it in every text rotator writes: `2026-12-04 07:49:36 UTC` (JSON and
    the stores keep ISO 8601; the state database's times are UTC whether or not they say so)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    # isoformat's first 19 characters are strftime's `%Y-%m-%d %H:%M:%S` at half the cost (a
    # fleet's `plan` writes 100,000 of them)
    return value.astimezone(UTC).isoformat(" ", "seconds")[:19] + " UTC"


@functools.lru_cache(maxsize=256)
def render(value: timedelta) -> str:
    """A duration as a person writes it: `90d`, `2s`, `1500ms`."""
    seconds = value.total_seconds()
    for unit in ("w", "d", "h", "m", "s"):
        if seconds >= _UNIT[unit] and seconds % _UNIT[unit] == 0:
            return f"{int(seconds // _UNIT[unit])}{unit}"
    if seconds and (seconds * 1000) == int(seconds * 1000):
        return f"{int(seconds * 1000)}ms"
    return f"{seconds:g}s"


Duration = Annotated[timedelta, BeforeValidator(_coerce), PlainSerializer(render, return_type=str)]
PositiveDuration = Annotated[
    timedelta, BeforeValidator(_coerce), AfterValidator(_positive), PlainSerializer(render, return_type=str)
]
