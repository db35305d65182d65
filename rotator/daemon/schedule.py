"""When each secret is due, and when its rotation may start. Pure: no I/O, same answer every restart.

due        = last rotation + max_age + jitter offset (a fixed fraction of `jitter`, from the secret's name)
next start = the first instant ≥ max(due, now) inside the policy's window
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from rotator.policies import Policy
from rotator.windows import Window


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

    def startable(self, now: datetime) -> bool:
        return self.next_start is not None and self.next_start <= now


def plan(secret: str, policy_name: str, policy: Policy, *, last_rotated: datetime | None, now: datetime) -> Plan:
    """What the policy says about one secret now."""
    if policy.max_age is None:
        return Plan(secret, policy_name, last_rotated, None, None, f"policy {policy_name} has no max_age")
    offset = jitter_offset(secret, policy.jitter)
    if last_rotated is None:
        due, why = now, "age unknown (never rotated, no rotated_at in the store): due now"
    else:
        due = last_rotated + policy.max_age + offset
        why = f"last rotated {last_rotated.isoformat(timespec='seconds')} + max_age {policy.max_age}"
        if offset:
            why += f" + jitter {offset}"
    earliest = max(due, now)
    if policy.window:
        start = Window.parse(policy.window).next_start(earliest)
        if start > earliest:
            why += f"; waits for window {policy.window}"
    else:
        start = earliest
    return Plan(secret, policy_name, last_rotated, due, start, why)
