"""What an error in a step means for the rotation: try the step again later, or give up on it.

The split is kopf's: an error says whether it is temporary (errors.py: a 5xx, a 429, a timeout,
a key not accepted yet) and may say when to look again (`retry_after`, from Retry-After); a
temporary error is retried with capped exponential backoff until the step has been failing for
`engine.step_deadline`, and then it counts as permanent. What giving up does depends on where the
rotation stands: before promotion the new key is thrown away (a rollback), after it nothing may
be undone without a person (a hold), and a rollback that cannot finish ends as failed.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable
from datetime import datetime, timedelta

from rotator.errors import RotatorError
from rotator.lifecycle import State, can_roll_back
from rotator.settings.models import EngineSettings


class GiveUp(enum.Enum):
    ROLL_BACK = "roll_back"
    """Before promotion: the old key is still current, so the new one is revoked and the rotation fails."""
    HOLD = "hold"
    """From promotion on: the rotation stays where it is until a person looks (rotator release)."""
    FAIL = "fail"
    """The rollback itself cannot finish: the rotation ends as failed, naming the key left behind."""


def backoff(attempts: int, settings: EngineSettings) -> timedelta:
    """The pause after `attempts` failed tries: retry_base doubled each time, at most retry_max."""
    doubled: timedelta = settings.retry_base * (2 ** min(attempts, 16))
    return min(doubled, settings.retry_max)


def retry_at(
    exc: RotatorError,
    *,
    attempts: int,
    failing_since: datetime,
    now: datetime,
    settings: EngineSettings,
    jitter: Callable[[float, float], float] = random.uniform,
) -> datetime | None:
    """When to try the step again after `exc`, or None to give up: a permanent error, or a step
    failing for step_deadline already. Retry-After wins over the backoff; up to 10 % is added so
    that rotations failing together do not come back together."""
    if not exc.temporary or now - failing_since >= settings.step_deadline:
        return None
    delay = timedelta(seconds=exc.retry_after) if exc.retry_after is not None else backoff(attempts, settings)
    return now + delay * (1 + jitter(0, 0.1))


def giving_up(state: State) -> GiveUp:
    """What giving up on the step of `state` does to the rotation."""
    if state is State.ROLLING_BACK:
        return GiveUp.FAIL
    return GiveUp.ROLL_BACK if can_roll_back(state) else GiveUp.HOLD
