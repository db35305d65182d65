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

from rotator.durations import moment, render
from rotator.policy.rules import Policy
from rotator.policy.windows import Window


@functools.lru_cache(maxsize=256)
def _window(text: str) -> Window:
    """Parsed once per window text: a tick plans every secret, most under a handful of policies."""
    return Window.parse(text)


def jitter_offset(secret: str, jitter: timedelta | None) -> timedelta:
    """A per-secret offset in [0, jitter), the same across restarts and machines."""
    if not jitter:
        return timedelta(0)
    fraction = int.from_bytes(hashlib.sha256(secret.encode()).digest()[:6]) / 2**48  # 12 hex digits
    return timedelta(seconds=int(jitter.total_seconds() * fraction))


# not frozen: that sets each field through object.__setattr__ (a fleet's first tick makes 100,000)
@dataclass(slots=True)
class Plan:
    secret: str
    policy: str
    last_rotated: datetime | None
    due: datetime | None
    next_start: datetime | None
    note: str | None = None
    """The reason as it is said (a plan the policy does not make: no max_age, an age not known yet)."""
    max_age: timedelta | None = None
    offset: timedelta = timedelta(0)
    """Into the window, or after the due date: the secret's share of the policy's jitter."""
    window: str | None = None
    waits: bool = False
    """The start waits for the window (and the offset into it)."""
    rough: bool = False
    """Only the due date is worked out (`sketch`): the start is not known yet."""

    def startable(self, now: datetime) -> bool:
        return self.next_start is not None and self.next_start <= now

    @property
    def why(self) -> str:
        """Why the secret starts when it does: written when asked, so a fleet's plans hold no text."""
        if self.note is not None or self.max_age is None:
            return self.note or ""
        if self.last_rotated is None:
            text = "age unknown (never rotated, no rotated_at in the store): due now"
        else:
            text = f"last rotated {moment(self.last_rotated)} + max_age {render(self.max_age)}"
        if self.window is None:
            return text + (f"; jitter {self.offset}" if self.offset else "")
        if not self.waits:
            return text
        if self.offset:
            return text + f"; starts {self.offset} into window {self.window}"
        return text + f"; waits for window {self.window}"


def plan(secret: str, policy_name: str, policy: Policy, *, last_rotated: datetime | None, now: datetime) -> Plan:
    """What the policy says about one secret now."""
    if policy.max_age is None:
        return Plan(secret, policy_name, last_rotated, None, None, f"policy {policy_name} has no max_age")
    due = now if last_rotated is None else last_rotated + policy.max_age
    earliest = max(due, now)
    if not policy.window:
        # an unknown age is due "now", which moves on: an offset after it would move with it, and
        # the start would never come (a window's occurrence holds still, so its offset may stay)
        offset = jitter_offset(secret, policy.jitter) if last_rotated is not None else timedelta(0)
        return Plan(
            secret, policy_name, last_rotated, due, max(due + offset, now), max_age=policy.max_age, offset=offset
        )
    window = _window(policy.window)
    opens, closes = window.occurrence(earliest)
    offset = jitter_offset(secret, min(policy.jitter or timedelta(0), window.length))
    # the offset into this occurrence: a night the clocks change may make it shorter than the offset
    start = max(opens + offset % (closes - opens), earliest)
    return Plan(
        secret,
        policy_name,
        last_rotated,
        due,
        start,
        max_age=policy.max_age,
        offset=offset,
        window=policy.window,
        waits=start > earliest,
    )


def sketch(secret: str, policy_name: str, policy: Policy, *, last_rotated: datetime | None, now: datetime) -> Plan:
    """What the policy says about one secret's due date, the start left out (`rough`): a daemon's
    first tick over a whole fleet needs the due dates (for /metrics, and as the earliest moment
    anything can happen), and works a start out only when its secret's due date comes."""
    if policy.max_age is None:
        return plan(secret, policy_name, policy, last_rotated=last_rotated, now=now)
    due = now if last_rotated is None else last_rotated + policy.max_age
    return Plan(secret, policy_name, last_rotated, due, None, max_age=policy.max_age, rough=True)
