"""Asking for a rotation: the one way the daemon, `rotate` and the bulk commands start one, or reach
one already under way — to put it under another policy (an incident overtaking a scheduled
rotation) or to have it looked at now. A rotation under way is only ever changed under its lease,
like every step: a holder in the middle of a step is waited for, never written beside."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from rotator.errors import ActiveRotationExists, LeaseHeld

if TYPE_CHECKING:
    from rotator.engine.runner import Runner
    from rotator.state.db import StateDB
    from rotator.state.schema import Rotation

ESCALATED = "policy.escalated"


def start(
    db: StateDB, *, secret: str, provider: str, policy: str, trigger: str, reason: str, actor: str
) -> Rotation | None:
    """A new rotation of `secret`, or None when one is under way already (it is left as it is)."""
    try:
        return db.create_rotation(
            secret=secret, provider=provider, policy=policy, trigger=trigger, reason=reason, actor=actor
        )
    except ActiveRotationExists:
        return None


def start_or_escalate(
    runner: Runner,
    *,
    secret: str,
    provider: str,
    policy: str | None,
    default_policy: str,
    trigger: str,
    reason: str,
    actor: str,
    look_now: bool = False,
    wait: timedelta = timedelta(0),
) -> tuple[Rotation, bool]:
    """A new rotation under `policy` (else `default_policy`), and True; or the one under way, and
    False — put under `policy` when it follows another one, and (`look_now`) due at once.

    The change is made under the rotation's lease, waiting up to `wait` for a holder to finish
    its step; LeaseHeld when it does not let go in time (nothing is changed then)."""
    deadline = time.monotonic() + wait.total_seconds()
    while True:
        try:
            created = runner.db.create_rotation(
                secret=secret,
                provider=provider,
                policy=policy or default_policy,
                trigger=trigger,
                reason=reason,
                actor=actor,
            )
            return created, True
        except ActiveRotationExists as exc:
            running = runner.db.get(exc.rotation_id)
        if (policy is None or policy == running.policy) and not look_now:
            return running, False
        try:
            changed = runner.act(running, lambda fresh: _escalate(runner, fresh, policy, look_now, trigger, reason))
        except LeaseHeld:
            if time.monotonic() >= deadline:
                raise
            runner.sleep(0.5)
            continue
        if not changed.terminal:
            return changed, False
        # it ended while the lease was waited for: a new rotation is what was asked for


def _escalate(
    runner: Runner, fresh: Rotation, policy: str | None, look_now: bool, trigger: str, reason: str
) -> Rotation:
    """The rotation as read under its lease, under `policy` and due now as asked (nothing once ended)."""
    if fresh.terminal:
        return fresh
    engine, fields = runner.engine, dict[str, Any]()
    if look_now:
        fields["next_attempt_at"] = engine.clock()
    if policy is not None and policy != fresh.policy:
        detail = {"from": fresh.policy, "to": policy, "trigger": trigger, "reason": reason}
        return engine.record(fresh, event=ESCALATED, detail=detail, policy=policy, **fields)
    return engine.record(fresh, **fields)
