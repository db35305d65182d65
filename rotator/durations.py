"""Durations as people write them in policy files: 90d, 2h, 15m, 0s, 1h30m."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_UNIT = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse(text: str) -> timedelta:
    """Parse `90d`, `1h30m`, `0s`; raise ValueError naming the accepted form."""
    compact = text.strip().replace(" ", "")
    if not compact or _PART.sub("", compact):
        raise ValueError(f"bad duration {text!r}: write a number and a unit (ms, s, m, h, d, w), e.g. 90d or 1h30m")
    return timedelta(seconds=sum(float(n) * _UNIT[u] for n, u in _PART.findall(compact)))


def _coerce(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError(f"bad duration {value!r}: write a number and a unit, e.g. 90d")
    if isinstance(value, int | float):
        return timedelta(seconds=value)
    if isinstance(value, str):
        return parse(value)
    return value


def render(value: timedelta) -> str:
    seconds = value.total_seconds()
    for unit in ("w", "d", "h", "m", "s"):
        if seconds >= _UNIT[unit] and seconds % _UNIT[unit] == 0:
            return f"{int(seconds // _UNIT[unit])}{unit}"
    return f"{seconds:g}s"


Duration = Annotated[timedelta, BeforeValidator(_coerce), PlainSerializer(render, return_type=str)]
