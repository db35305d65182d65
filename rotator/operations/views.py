"""Read models for `status` and `plan`: what people (and their scripts, with --json) see."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from rotator.app import App
from rotator.daemon.planning import Planner
from rotator.lifecycle import WITH_OPERATOR
from rotator.state.clock import utcnow
from rotator.state.schema import LeftoverKey, Rotation


def _when(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value else None


def _days(now: datetime, since: datetime | None, digits: int) -> float | None:
    return round((now - since).total_seconds() / 86400, digits) if since else None


def _seconds(now: datetime, since: datetime | None) -> int | None:
    return int((now - since).total_seconds()) if since else None


def _in_flight(active: Rotation | None) -> dict[str, Any] | None:
    if active is None:
        return None
    return {
        "id": active.id,
        "state": active.state,
        "waiting_for": active.waiting_for or None,
        "held": active.held_reason,
        "operator_action": active.state in WITH_OPERATOR,
        "since": _when(active.waiting_since or active.updated_at),
        "next_attempt_at": _when(active.next_attempt_at),
    }


def status_rows(app: App, secret: str | None = None) -> list[dict[str, Any]]:
    """Every secret: key age, next due date, and the rotation in flight with what it waits for."""
    now = utcnow()
    # one query each for what is in flight and what was left alive, not one per secret
    active = {r.secret: r for r in app.db.active()}
    left: dict[str, list[LeftoverKey]] = defaultdict(list)
    for key in app.db.leftovers(secret):
        left[key.secret].append(key)
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
                "age_seconds": _seconds(now, plan.last_rotated),
                "next_due": _when(plan.due),
                "rotation": _in_flight(active.get(plan.secret)),
                "left_alive": [
                    {
                        "id": k.id,
                        "key_id": k.key_id,
                        "fingerprint": k.fingerprint,
                        "why": k.why,
                        "since": _when(k.recorded_at),
                        "rotation_id": k.rotation_id,
                    }
                    for k in left.get(plan.secret, [])
                ],
            }
        )
    return rows


def plan_rows(app: App) -> Iterator[dict[str, Any]]:
    """For every secret: its age, when it is due, the next start inside its window, and why (a
    row at a time: a fleet's rows are printed as they come, not held)."""
    now = utcnow()
    in_flight = {r.secret: r.id for r in app.db.active()}
    for plan in Planner(app).plans(now):
        yield (
            {
                "secret": plan.secret,
                "policy": plan.policy,
                "age_days": _days(now, plan.last_rotated, 2),
                "age_seconds": _seconds(now, plan.last_rotated),
                "due": _when(plan.due),
                "next_start": _when(plan.next_start),
                "in_flight": in_flight.get(plan.secret, False),
                "why": plan.why,
            }
        )
