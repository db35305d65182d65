"""Plans for every secret of the policies in force: age, due date, next start, and why."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from rotator import log
from rotator.app import App
from rotator.daemon import schedule
from rotator.errors import RotatorError
from rotator.plugin.http import parse_time
from rotator.settings.policies import SecretSpec
from rotator.state.clock import utcnow

_log = log.get(__name__)


DISCOVERY_BATCH = 500
"""Secrets whose stored age is read in one go (a store reads them 20 to a call where it can)."""


class Planner:
    """Plans from the state database's completed rotations; for a secret never rotated here, from
    the `rotated_at` of the value in its store, read once ("discovery", in bulk per store)."""

    def __init__(self, app: App, earlier: Planner | None = None) -> None:
        self.app = app
        self._stored_age: dict[str, datetime | None] = {}
        self._carried: set[str] = set()
        """Secrets whose stored age is `earlier`'s: in force until discovery reads it again."""
        if earlier is not None:
            self._keep_ages(earlier)

    def _keep_ages(self, earlier: Planner) -> None:
        """After a reload, the ages `earlier` read of secrets kept in the same place of the same
        store, in force while discovery reads them again (a value written there by hand since is
        seen): before, their ages left /metrics and nothing started for them until it had."""
        before, now = earlier.app, self.app
        # a copy: the discovery thread may be adding to it (a dict changing size as it is walked)
        for name, age in list(earlier._stored_age.items()):
            spec, was = now.policies.secrets.get(name), before.policies.secrets.get(name)
            if spec is None or was is None or spec.store != was.store:
                continue  # gone, or moved: its age is read again where it is now
            # the store's settings alike, all of them: a Vault namespace, say, reaches other secrets
            store = now.settings.stores.get(spec.store.instance)
            if store is not None and store == before.settings.stores.get(spec.store.instance):
                self._stored_age[name] = age
                self._carried.add(name)

    def plans(self, now: datetime | None = None, *, discover: bool = True) -> list[schedule.Plan]:
        """Every secret's plan. With `discover`, ages unknown are read from the stores first (in
        bulk); without, such a secret's plan says it is being discovered and starts nothing."""
        now = now or utcnow()
        finished = self.app.db.last_completed_at()
        if discover:
            self.discover(sorted(self.undiscovered(finished)))
        return [self._plan(spec, finished, now) for _, spec in sorted(self.app.policies.secrets.items())]

    def sketches(self, now: datetime) -> Iterator[schedule.Plan]:
        """Every secret's due date (`schedule.sketch`), without reading any store; one at a time
        (the agenda keeps a column of them, not 100,000 plans at once)."""
        finished = self.app.db.last_completed_at()
        for spec in self.app.policies.secrets.values():
            yield self._plan(spec, finished, now, rough=True)

    def worked_out(self, rough: schedule.Plan, now: datetime) -> schedule.Plan:
        """A sketch's full plan, from what the sketch knew (its secret's rotations that ended since
        are re-planned by the agenda from the state database)."""
        policy = self.app.policies.policies[rough.policy]
        return schedule.plan(rough.secret, rough.policy, policy, last_rotated=rough.last_rotated, now=now)

    def plan(self, secret: str, now: datetime) -> schedule.Plan:
        """One secret's plan, its last rotation read now (the agenda re-plans only what changed)."""
        spec = self.app.policies.secret(secret)
        last = self.app.db.last_completed(secret)
        finished = {secret: last.finished_at} if last is not None and last.finished_at is not None else {}
        if secret not in finished and secret not in self._stored_age:
            self.discover([secret])
        return self._plan(spec, finished, now)

    def undiscovered(self, finished: dict[str, datetime] | None = None) -> list[str]:
        """Secrets whose age only their store can tell and that were not read yet (or only before a
        reload: read again)."""
        finished = self.app.db.last_completed_at() if finished is None else finished
        return [
            n
            for n in self.app.policies.secrets
            if n not in finished and (n not in self._stored_age or n in self._carried)
        ]

    def discover(self, secrets: list[str]) -> list[str]:
        """Read the stored values of `secrets` in bulk, per store; return those now known (a store
        that cannot be read now leaves its secrets for a later try)."""
        by_store: dict[str, list[SecretSpec]] = {}
        for name in secrets:
            spec = self.app.policies.secret(name)
            by_store.setdefault(spec.store.instance, []).append(spec)
        known: list[str] = []
        for instance, specs in by_store.items():
            for chunk in (specs[i : i + DISCOVERY_BATCH] for i in range(0, len(specs), DISCOVERY_BATCH)):
                try:
                    found = self.app.store(instance).read_current_many([s.store.location for s in chunk])
                except RotatorError as exc:
                    _log.warning("discovery.failed", store=instance, error=str(exc))
                    break
                for spec in chunk:
                    if spec.store.location in found:
                        current = found[spec.store.location]
                        self._stored_age[spec.name] = parse_time(current.value.rotated_at) if current else None
                        self._carried.discard(spec.name)
                        known.append(spec.name)
        return known

    def _plan(
        self, spec: SecretSpec, finished: dict[str, datetime], now: datetime, *, rough: bool = False
    ) -> schedule.Plan:
        policy = self.app.policies.policies[spec.policy]
        if spec.name not in finished and spec.name not in self._stored_age:
            return schedule.Plan(
                spec.name, spec.policy, None, None, None, "age not known yet: reading the store", policy.max_age
            )
        last = finished.get(spec.name) or self._stored_age.get(spec.name)
        return (schedule.sketch if rough else schedule.plan)(spec.name, spec.policy, policy, last_rotated=last, now=now)
