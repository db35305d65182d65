"""`notify_before`: people (operators of dashboard-only providers above all) told ahead of a start."""

from __future__ import annotations

from datetime import datetime

from rotator.app import App
from rotator.daemon.schedule import Plan
from rotator.durations import moment


def announce(app: App, plan: Plan, now: datetime, announced: set[tuple[str, datetime]]) -> None:
    """Send `rotation.upcoming` once per start, from `notify_before` ahead of it until it comes;
    `announced` holds the starts already told (only once the notification is in the outbox: one
    that a failing state database did not take is sent at the next look)."""
    ahead = app.policies.policies[plan.policy].notify_before
    if ahead is None or plan.next_start is None or (plan.secret, plan.next_start) in announced:
        return
    if plan.next_start - ahead <= now < plan.next_start:
        spec = app.policies.secret(plan.secret)
        app.notifier.emit(
            "rotation.upcoming",
            {
                "secret": plan.secret,
                "provider": spec.provider,
                "policy": plan.policy,
                "starts_at": plan.next_start.isoformat(timespec="seconds"),
                "reason": f"rotation starts {moment(plan.next_start)}",
            },
        )
        announced.add((plan.secret, plan.next_start))
