"""When each secret is due, and when its rotation may start. Pure: no I/O, same answer every restart.

due        = last rotation + max_age
offset     = a fixed fraction of `jitter` derived from the secret's name (the same on every restart)
next start = without a window: max(due + offset, now)
             with a window: the window occurrence at or after max(due, now), `offset` into it
             (offset taken modulo the window's length), or at once if that slot already passed
             while the window is open — so 500 secrets due together spread over the window
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from rotator.durations import render
from rotator.policies import Policy
from rotator.windows import Window


@functools.lru_cache(maxsize=256)
def _window(text: str) -> Window:
    """Parsed once per window text: a tick plans every secret, most under a handful of policies."""
    return Window.parse(text)


def jitter_offset(secret: str, jitter: timedelta | None) -> timedelta:
    """A per-secret offset in [0, jitter), the same across restarts and machines."""
    if not jitter:
        return timedelta(0)
    fraction = int(hashlib.sha256(secret.encode()).hexdigest()[:12], 16) / 16**12
    return timedelta(seconds=int(jitter.total_seconds() * fraction))


@dataclass(frozen=True)
class Plan:
    secret: str
    policy: str
    last_rotated: datetime | None
    due: datetime | None
    next_start: datetime | None
    why: str
    max_age: timedelta | None = None

    def startable(self, now: datetime) -> bool:
        return self.next_start is not None and self.next_start <= now


def plan(secret: str, policy_name: str, policy: Policy, *, last_rotated: datetime | None, now: datetime) -> Plan:
    """What the policy says about one secret now."""
    if policy.max_age is None:
        return Plan(secret, policy_name, last_rotated, None, None, f"policy {policy_name} has no max_age")
    if last_rotated is None:
        due, why = now, "age unknown (never rotated, no rotated_at in the store): due now"
    else:
        due = last_rotated + policy.max_age
        why = f"last rotated {last_rotated.isoformat(timespec='seconds')} + max_age {render(policy.max_age)}"
    earliest = max(due, now)
    if not policy.window:
        offset = jitter_offset(secret, policy.jitter)
        if offset:
            why += f"; jitter {offset}"
        return Plan(secret, policy_name, last_rotated, due, max(due + offset, now), why, policy.max_age)
    window = _window(policy.window)
    opens, closes = window.occurrence(earliest)
    offset = jitter_offset(secret, min(policy.jitter or timedelta(0), window.length))
    start = max(opens + offset, earliest)
    if start >= closes:
        start = window.occurrence(closes)[0] + offset
    if start > earliest:
        why += f"; starts {offset} into window {policy.window}" if offset else f"; waits for window {policy.window}"
    return Plan(secret, policy_name, last_rotated, due, start, why, policy.max_age)
