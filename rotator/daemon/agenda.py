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
from array import array
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta

from rotator.daemon.planning import Planner
from rotator.daemon.schedule import Plan

CLOCK_SKEW = timedelta(minutes=5)
"""Ended rotations are asked for this far back: finished_at is the state database's clock, which a
writer carries between readings (state/clock.py), and an older rotator wrote its host's."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)

Figures = tuple[str, int | None, int | None, int | None]
"""What /metrics shows of a secret: its name, last rotation, max_age and due date, in microseconds
(since the epoch for the moments), each None where the plan has none."""


def micros(value: datetime) -> int:
    return (value - _EPOCH) // _MICRO


def figures(plan: Plan) -> Figures:
    return (
        plan.secret,
        None if plan.last_rotated is None else micros(plan.last_rotated),
        None if plan.max_age is None else plan.max_age // _MICRO,
        None if plan.due is None else micros(plan.due),
    )


class Agenda:
    def __init__(self, planner: Planner, notify_before: Callable[[str], timedelta | None]) -> None:
        self._planner = planner
        self._notify_before = notify_before
        """A policy's notify_before (None: no announcement)."""
        self.plans: dict[str, Plan] = {}
        """The plans of the secrets looked at since the first tick; the others are sketched."""
        self._sketched: list[str] = []
        """The secrets sketched at the first tick, in the order their moments come: a fleet's
        100,000 secrets as a Plan, a wake time and a heap entry each held 35 MB; as a name, a due
        date and a policy in columns, 2 MB (all the sketch knew)."""
        self._sketch_due = array("q")
        """Each sketched secret's due date, in microseconds since the epoch."""
        self._sketch_policy = array("I")
        """Each sketched secret's policy, as its place in `_policies`."""
        self._policies: list[tuple[str, timedelta]] = []
        """The sketched secrets' policies, with their max_age."""
        self._next = 0
        """The first sketch not yet taken (one whose secret has a plan since is passed over)."""
        self._wake: dict[str, datetime] = {}
        self._heap: list[tuple[datetime, str]] = []
        self._asked_at: datetime | None = None
        """The state database's clock when ended rotations were last asked for (this host's may
        differ by any amount: finished_at is written on the database's)."""
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
        known: Plan | None = None
        try:
            while most is None or len(came) < most:
                known = self._take(now)
                if known is None:
                    break
                plan = self._came(known, now)
                if plan is not None:
                    came.append(plan)
                known = None
        except BaseException:
            # planning asks the state database, which may fail mid-way: whatever was taken off
            # the agenda is back on it for the next call, so that no secret is left off for good
            for taken in [*came, *([known] if known is not None else [])]:
                self._schedule(taken.secret, now)
            raise
        return came

    def _came(self, known: Plan, now: datetime) -> Plan | None:
        """The fresh plan of a secret whose moment came, or None when a sketch's start, worked
        out now, lies ahead (it is back on the agenda for it)."""
        secret = known.secret
        if known.rough:  # its due date came: work out its start, which may lie ahead
            worked_out = self._planner.worked_out(known, now)
            if self._moment(worked_out) > now:
                self._put(worked_out, now)
                return None
        plan = self._planner.plan(secret, now)
        self.plans[secret] = plan
        ahead = self._notify_before(plan.policy)
        if ahead is not None and plan.next_start is not None and plan.next_start - ahead <= now:
            self._heralded[secret] = plan.next_start  # the caller announces it now
        return plan

    def _take(self, now: datetime) -> Plan | None:
        """The plan whose moment came first, if one came: off the heap, or the next sketch."""
        heap = self._heap
        while True:
            sketch_at = self._next_sketch_moment()
            if heap and heap[0][0] <= now and (sketch_at is None or heap[0][0] <= sketch_at):
                at, secret = heapq.heappop(heap)
                if self._wake.get(secret) != at:
                    continue  # re-planned since: a newer moment stands
                del self._wake[secret]
                return self.plans[secret]
            if sketch_at is None or sketch_at > now:
                return None
            sketch = self._sketch(self._next)
            self._next += 1
            self.plans[sketch.secret] = sketch  # looked at: its sketch in the column stands no more
            return sketch

    def _next_sketch_moment(self) -> datetime | None:
        while self._next < len(self._sketched) and self._sketched[self._next] in self.plans:
            self._next += 1  # planned since the first tick: its plan is on the heap
        if self._next == len(self._sketched):
            return None
        return self._moment(self._sketch(self._next))

    def _sketch(self, index: int) -> Plan:
        """The sketch in the column's place `index` as the first tick made it."""
        policy, max_age = self._policies[self._sketch_policy[index]]
        due = _EPOCH + self._sketch_due[index] * _MICRO
        return Plan(self._sketched[index], policy, due - max_age, due, None, max_age=max_age, rough=True)

    def figures(self) -> Iterator[Figures]:
        """Each secret's figures for /metrics: from its plan, or from its sketch's column."""
        plans = self.plans.copy()  # one moment's: a tick may move a secret from its sketch meanwhile
        max_ages = [max_age // _MICRO for _, max_age in self._policies]
        for secret, due, policy in zip(self._sketched, self._sketch_due, self._sketch_policy, strict=True):
            if secret not in plans:
                max_age = max_ages[policy]
                yield secret, due - max_age, max_age, due
        yield from map(figures, plans.values())

    @property
    def started(self) -> bool:
        """Whether the first tick planned the fleet."""
        return self._asked_at is not None

    def refresh(self, now: datetime) -> None:
        """Plan every secret the first time; later, re-plan those whose rotations ended since."""
        asked = self._planner.app.db.clock()
        if self._asked_at is None:
            # ages only a store can tell are read by the daemon's discovery, off this path
            # (replan); starts are worked out as due dates come (a whole fleet's took seconds)
            sketched = []
            policies: dict[str, int] = {}
            for plan in self._planner.sketches(now):
                if plan.rough and plan.last_rotated is not None:
                    assert plan.due is not None and plan.max_age is not None
                    policy = policies.setdefault(plan.policy, len(policies))
                    if policy == len(self._policies):
                        self._policies.append((plan.policy, plan.max_age))
                    sketched.append((micros(self._moment(plan)), micros(plan.due), policy, plan.secret))
                else:  # no due date, or an age unknown: due at once (few secrets, and planned soon)
                    self._put(plan, now)
            sketched.sort()
            self._sketched = [secret for *_, secret in sketched]
            self._sketch_due = array("q", [due for _, due, _, _ in sketched])
            self._sketch_policy = array("I", [policy for _, _, policy, _ in sketched])
        else:
            # from the earlier of the last asking and now: a clock stepped back misses nothing
            ended = self._planner.app.db.finished_since(min(self._asked_at, asked) - CLOCK_SKEW)
            for secret, finished in ended.items():
                if secret in self._planner.app.policies.secrets and finished != self._ended.get(secret):
                    self._put(self._planner.plan(secret, now), now)
                    self._ended[secret] = finished  # once planned: a failed planning is tried again
        self._asked_at = asked

    def replan(self, secrets: Sequence[str], now: datetime) -> None:
        """Plan `secrets` again now (their stored ages were just discovered)."""
        for secret in secrets:
            if secret in self._planner.app.policies.secrets:
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
