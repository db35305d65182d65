"""Plans for every secret of the policies in force: age, due date, next start, and why."""

from __future__ import annotations

from datetime import datetime

from rotator.app import App
from rotator.daemon import schedule
from rotator.errors import RotatorError
from rotator.policies import SecretSpec
from rotator.providers.http import parse_time
from rotator.state.db import utcnow


class Planner:
    def __init__(self, app: App) -> None:
        self.app = app
        self._stored_age: dict[str, datetime | None] = {}

    def plans(self, now: datetime | None = None) -> list[schedule.Plan]:
        now = now or utcnow()
        finished = self.app.db.last_completed_at()
        return [
            schedule.plan(
                name,
                spec.policy,
                self.app.policies.policies[spec.policy],
                last_rotated=self.last_rotated(spec, finished),
                now=now,
            )
            for name, spec in sorted(self.app.policies.secrets.items())
        ]

    def plan(self, secret: str, now: datetime) -> schedule.Plan:
        """One secret's plan, its last rotation read now (the agenda re-plans only what changed)."""
        spec = self.app.policies.secret(secret)
        last = self.app.db.last_completed(secret)
        finished = {secret: last.finished_at} if last is not None and last.finished_at is not None else {}
        return schedule.plan(
            secret,
            spec.policy,
            self.app.policies.policies[spec.policy],
            last_rotated=self.last_rotated(spec, finished),
            now=now,
        )

    def last_rotated(self, spec: SecretSpec, finished: dict[str, datetime]) -> datetime | None:
        """The last completed rotation; for a secret never rotated here, the stored value's rotated_at (read once)."""
        if spec.name in finished:
            return finished[spec.name]
        if spec.name not in self._stored_age:
            try:
                current = self.app.store(spec.store.instance).read_current(location=spec.store.location)
            except RotatorError:
                return None
            self._stored_age[spec.name] = parse_time(current.value.rotated_at) if current else None
        return self._stored_age[spec.name]
