"""The cutover gate (SPEC §6): may the old key be revoked yet?

Each signal answers passed / waiting / unavailable. The gate opens only when `min_soak` has
passed and every signal the policy requires has passed; "unavailable" never counts as passed.
The signals that need the world (consumers, old_key_idle) come from `engine.gate_signals`; a required
signal nobody supplies is unavailable.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from rotator.durations import moment, render
from rotator.errors import RotationError
from rotator.policy.rules import Cutover
from rotator.state.schema import Rotation


class Status(enum.StrEnum):
    PASSED = "passed"
    WAITING = "waiting"
    UNAVAILABLE = "unavailable"


@dataclass(frozen=True)
class Signal:
    name: str
    status: Status
    detail: str = ""
    check_again_at: datetime | None = None


@dataclass(frozen=True)
class Verdict:
    open: bool
    signals: list[Signal] = field(default_factory=list)
    timed_out: bool = False
    check_again_at: datetime | None = None

    def describe(self) -> str:
        return "; ".join(f"{s.name}: {s.status}{' (' + s.detail + ')' if s.detail else ''}" for s in self.signals)


SignalCheck = Callable[[Rotation, datetime], Signal]


def min_soak(soak: timedelta) -> SignalCheck:
    def check(rotation: Rotation, now: datetime) -> Signal:
        if rotation.promoted_at is None:
            raise RotationError("the cutover gate runs only after promotion")
        due = rotation.promoted_at + soak
        if now >= due:
            return Signal("min_soak", Status.PASSED, f"{render(soak)} since promotion")
        return Signal("min_soak", Status.WAITING, f"until {moment(due)}", due)

    return check


def unavailable(name: str) -> SignalCheck:
    def check(rotation: Rotation, now: datetime) -> Signal:
        return Signal(name, Status.UNAVAILABLE, "this provider cannot tell")

    return check


RECHECK = timedelta(seconds=30)


def evaluate(
    cutover: Cutover, rotation: Rotation, now: datetime, available: Mapping[str, SignalCheck] | None = None
) -> Verdict:
    """Evaluate min_soak and every required signal; say when to look again if the gate stays shut."""
    checks = [min_soak(cutover.min_soak)] + [(available or {}).get(name, unavailable(name)) for name in cutover.require]
    signals = [check(rotation, now) for check in checks]
    if all(s.status is Status.PASSED for s in signals):
        return Verdict(open=True, signals=signals)
    if rotation.promoted_at is None:
        raise RotationError("the cutover gate runs only after promotion")
    deadline = rotation.promoted_at + cutover.max_wait if cutover.max_wait is not None else None
    if deadline is not None and now >= deadline:
        return Verdict(open=False, signals=signals, timed_out=True)
    candidates = [s.check_again_at for s in signals if s.check_again_at]
    if deadline is not None:
        candidates.append(deadline)
    if not candidates or any(s.status is not Status.PASSED and s.check_again_at is None for s in signals):
        # signals without a time of their own are polled
        candidates.append(now + RECHECK)
    return Verdict(open=False, signals=signals, check_again_at=min(candidates))
