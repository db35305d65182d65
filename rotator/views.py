"""Read models for `status` and `plan`: what people (and their scripts, with --json) see."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rotator.app import App
from rotator.daemon.planning import Planner
from rotator.state.db import utcnow
from rotator.state.schema import Rotation


def _when(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value else None


def _days(now: datetime, since: datetime | None, digits: int) -> float | None:
    return round((now - since).total_seconds() / 86400, digits) if since else None


def _in_flight(active: Rotation | None) -> dict[str, Any] | None:
    if active is None:
        return None
    return {
        "id": active.id,
        "state": active.state,
        "waiting_for": active.waiting_for or None,
        "held": active.held_reason,
        "operator_action": active.state.startswith("awaiting_"),
        "since": _when(active.waiting_since or active.updated_at),
        "next_attempt_at": _when(active.next_attempt_at),
    }


def status_rows(app: App, secret: str | None = None) -> list[dict[str, Any]]:
    """Every secret: key age, next due date, and the rotation in flight with what it waits for."""
    now = utcnow()
    rows = []
    for plan in Planner(app).plans(now):
        if secret and plan.secret != secret:
            continue
        rows.append(
            {
                "secret": plan.secret,
                "provider": app.policies.secret(plan.secret).provider,
                "policy": plan.policy,
                "last_rotated": _when(plan.last_rotated),
                "age_days": _days(now, plan.last_rotated, 1),
                "next_due": _when(plan.due),
                "rotation": _in_flight(app.db.active_for(plan.secret)),
                "left_alive": [
                    {
                        "id": k.id,
                        "key_id": k.key_id,
                        "fingerprint": k.fingerprint,
                        "why": k.why,
                        "since": _when(k.recorded_at),
                        "rotation_id": k.rotation_id,
                    }
                    for k in app.db.leftovers(plan.secret)
                ],
            }
        )
    return rows


def plan_rows(app: App) -> list[dict[str, Any]]:
    """For every secret: its age, when it is due, the next start inside its window, and why."""
    now = utcnow()
    rows = []
    for plan in Planner(app).plans(now):
        active = app.db.active_for(plan.secret)
        rows.append(
            {
                "secret": plan.secret,
                "policy": plan.policy,
                "age_days": _days(now, plan.last_rotated, 2),
                "due": _when(plan.due),
                "next_start": _when(plan.next_start),
                "in_flight": active.id if active else False,
                "why": plan.why,
            }
        )
    return rows
