"""The daemon's agenda: each secret's plan, kept between ticks, and the moments something happens.

A plan changes only when the secret's last rotation changes (one ended: the state database says
which, through an index), when the policies are reloaded (a new agenda), or when time reaches its
next start or its `notify_before` announcement. So a tick re-plans the secrets whose rotations
ended since the last one and looks only at those whose moment has come: its cost follows what is
due, not the size of the fleet. Plans come from the same pure `schedule.plan`, so windows, jitter
and `notify_before` mean what they always meant.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from rotator.daemon.planning import Planner
from rotator.daemon.schedule import Plan

CLOCK_SKEW = timedelta(minutes=5)
"""Replicas write finished_at with their own clocks: ended rotations are asked for this far back."""


class Agenda:
    def __init__(self, planner: Planner, notify_before: Callable[[str], timedelta | None]) -> None:
        self._planner = planner
        self._notify_before = notify_before
        """A policy's notify_before (None: no announcement)."""
        self.plans: dict[str, Plan] = {}
        self._wake: dict[str, datetime] = {}
        self._heap: list[tuple[datetime, str]] = []
        self._asked_at: datetime | None = None
        self._ended: dict[str, datetime] = {}
        """The newest end of a rotation seen per secret (seen again while within CLOCK_SKEW)."""
        self._heralded: dict[str, datetime] = {}
        """The start each secret's announcement was handed out for (notify_before)."""

    def due(self, now: datetime, *, replan: Sequence[str] = (), most: int | None = None) -> list[Plan]:
        """The plans whose start or announcement has come, the earliest first and at most `most`,
        freshly planned; each is off the agenda until `again` (or an ended rotation of its secret)
        puts it back, and the rest wait for the next call. `replan`: secrets whose stored ages
        were just discovered."""
        self.refresh(now)
        self.replan(replan, now)
        came: list[Plan] = []
        while self._heap and self._heap[0][0] <= now and (most is None or len(came) < most):
            at, secret = heapq.heappop(self._heap)
            if self._wake.get(secret) != at:
                continue  # re-planned since: a newer moment stands
            del self._wake[secret]
            known = self.plans[secret]
            if known.rough:  # its due date came: work out its start, which may lie ahead
                worked_out = self._planner.worked_out(known, now)
                if self._moment(worked_out) > now:
                    self._put(worked_out, now)
                    continue
            plan = self._planner.plan(secret, now)
            self.plans[secret] = plan
            ahead = self._notify_before(plan.policy)
            if ahead is not None and plan.next_start is not None and plan.next_start - ahead <= now:
                self._heralded[secret] = plan.next_start  # the caller announces it now
            came.append(plan)
        return came

    def refresh(self, now: datetime) -> None:
        """Plan every secret the first time; later, re-plan those whose rotations ended since."""
        if self._asked_at is None:
            # ages only a store can tell are read by the daemon's discovery, off this path
            # (replan); starts are worked out as due dates come (a whole fleet's took seconds)
            for plan in self._planner.sketches(now):
                self._put(plan, now)
        else:
            ended = self._planner.app.db.finished_since(self._asked_at - CLOCK_SKEW)
            for secret, finished in ended.items():
                if secret in self.plans and finished != self._ended.get(secret):
                    self._ended[secret] = finished
                    self._put(self._planner.plan(secret, now), now)
        self._asked_at = now

    def replan(self, secrets: Sequence[str], now: datetime) -> None:
        """Plan `secrets` again now (their stored ages were just discovered)."""
        for secret in secrets:
            if secret in self.plans:
                self._put(self._planner.plan(secret, now), now)

    def again(self, plan: Plan, now: datetime, at: datetime | None = None) -> None:
        """Look at `plan`'s secret again at `at`, or at its next moment after `now`."""
        if at is not None:
            self._schedule(plan.secret, at)
        else:
            self._put(plan, now)

    def _put(self, plan: Plan, now: datetime) -> None:
        self.plans[plan.secret] = plan
        if plan.next_start is None and not plan.rough:
            self._wake.pop(plan.secret, None)  # no max_age: nothing will ever be due
            return
        self._schedule(plan.secret, max(self._moment(plan), now))  # or now, when it came already

    def _moment(self, plan: Plan) -> datetime:
        """When something happens to the plan's secret: its start, or its announcement before
        (notify_before); for a sketch, its due date less that, which comes no later."""
        start = plan.due if plan.rough else plan.next_start
        assert start is not None  # a sketch has a due date; anything else without a start was let go
        ahead = self._notify_before(plan.policy)
        if ahead is not None and (plan.rough or self._heralded.get(plan.secret) != plan.next_start):
            return start - ahead
        return start

    def _schedule(self, secret: str, at: datetime) -> None:
        self._wake[secret] = at
        heapq.heappush(self._heap, (at, secret))
