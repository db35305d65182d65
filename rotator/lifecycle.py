"""States of one rotation and the transitions allowed between them (SPEC §3). Pure: no I/O.

Below the engine and the state database, which both speak of states only through `State`."""

from __future__ import annotations

import enum

from rotator.errors import RotationError


class State(enum.StrEnum):
    REQUESTED = "requested"
    CREATING = "creating"
    AWAITING_NEW_KEY = "awaiting_new_key"
    STAGED = "staged"
    PROBED = "probed"
    PROMOTED = "promoted"
    CUTOVER_WAIT = "cutover_wait"
    REVOKING = "revoking"
    AWAITING_REVOCATION = "awaiting_revocation"
    VERIFYING = "verifying"
    COMPLETED = "completed"
    ROLLING_BACK = "rolling_back"
    FAILED = "failed"


S = State
ALLOWED: dict[State, frozenset[State]] = {
    S.REQUESTED: frozenset({S.CREATING, S.AWAITING_NEW_KEY, S.ROLLING_BACK}),
    S.CREATING: frozenset({S.STAGED, S.ROLLING_BACK}),
    S.AWAITING_NEW_KEY: frozenset({S.STAGED, S.ROLLING_BACK}),
    S.STAGED: frozenset({S.PROBED, S.ROLLING_BACK}),
    S.PROBED: frozenset({S.PROMOTED, S.ROLLING_BACK}),
    S.PROMOTED: frozenset({S.CUTOVER_WAIT}),
    S.CUTOVER_WAIT: frozenset({S.REVOKING, S.AWAITING_REVOCATION, S.FAILED}),
    S.REVOKING: frozenset({S.VERIFYING}),
    S.AWAITING_REVOCATION: frozenset({S.COMPLETED, S.FAILED}),
    S.VERIFYING: frozenset({S.COMPLETED}),
    S.ROLLING_BACK: frozenset({S.FAILED}),
    S.COMPLETED: frozenset(),
    S.FAILED: frozenset(),
}

BEFORE_PROMOTION = frozenset({S.REQUESTED, S.CREATING, S.AWAITING_NEW_KEY, S.STAGED, S.PROBED})
"""Failures here roll back: the new key is revoked and the old one stays current."""

TERMINAL = frozenset({S.COMPLETED, S.FAILED})

WITH_OPERATOR = frozenset({S.AWAITING_NEW_KEY, S.AWAITING_REVOCATION})
"""The operator (a person) has the next move: make the new key, or revoke the old one."""

ABORTABLE_AFTER_PROMOTION = frozenset({S.CUTOVER_WAIT, S.AWAITING_REVOCATION})
"""A person may stop these: the new key stays current and the old key is left alive, not revoked."""

HAPPY_PATH = (
    S.REQUESTED,
    S.CREATING,
    S.STAGED,
    S.PROBED,
    S.PROMOTED,
    S.CUTOVER_WAIT,
    S.REVOKING,
    S.VERIFYING,
    S.COMPLETED,
)


def check(current: State, target: State) -> None:
    """Raise RotationError unless the lifecycle allows `current → target`."""
    if target not in ALLOWED[current]:
        raise RotationError(f"illegal transition {current} → {target}")


def can_roll_back(state: State) -> bool:
    return state in BEFORE_PROMOTION
