"""Replicas share each rate limit: together never over it, and one busy replica keeps almost all of it."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rotator.runtime.sharing import GRACE, RESERVE, STALE, Sharing

AWS = 1.1  # AWS's writes: 50 per second, the window padded by 10 %


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def beat(sharing: Sharing, clock: Clock, seconds: float, **seen: int) -> None:
    """Heartbeats every 2 s for `seconds`, each seeing the same."""
    for _ in range(round(seconds / 2)):
        clock.now += 2
        sharing.seen(alive=seen["alive"], busy=seen["busy"], me_busy=bool(seen["me_busy"]), at=clock.now)


def settled(alive: int, busy: int, me_busy: bool) -> float:
    clock = Clock()
    sharing = Sharing(clock=clock)
    beat(sharing, clock, 10, alive=alive, busy=busy, me_busy=me_busy)
    return sharing.fraction(AWS)


@pytest.mark.parametrize(
    ("alive", "busy", "me_busy", "part"),
    [
        (1, 1, True, 1 - RESERVE),  # alone: a second replica may start at any moment
        (2, 1, True, 1 - RESERVE),  # the only busy one of two keeps 96 %, not half
        (10, 1, True, 1 - RESERVE),
        (2, 2, True, (1 - RESERVE) / 2),
        (3, 2, True, (1 - RESERVE) / 2),
        (2, 1, False, RESERVE / 4),
        (4, 0, False, RESERVE / 8),
    ],
)
def test_busy_replicas_split_all_but_the_reserve_and_idle_ones_share_it(
    alive: int, busy: int, me_busy: bool, part: float
) -> None:
    assert settled(alive, busy, me_busy) == pytest.approx(part)


def test_nothing_before_the_first_heartbeat_an_idle_part_until_the_others_saw_it_or_once_stale() -> None:
    clock = Clock()
    sharing = Sharing(clock=clock)
    assert sharing.fraction(AWS) == 0.0
    sharing.seen(alive=2, busy=2, me_busy=True, at=clock.now)
    assert sharing.fraction(AWS) == RESERVE / 4  # the other has not counted this one yet
    beat(sharing, clock, 8, alive=2, busy=2, me_busy=True)
    assert sharing.fraction(AWS) == pytest.approx((1 - RESERVE) / 2)
    clock.now += STALE
    assert sharing.fraction(AWS) == pytest.approx((1 - RESERVE) / 2)
    clock.now += 0.01  # the database stopped answering: the others may have changed since
    assert sharing.fraction(AWS) == RESERVE / 4


def test_a_lower_part_applies_at_once_a_higher_one_once_the_lower_has_held_past_the_window() -> None:
    clock = Clock()
    sharing = Sharing(clock=clock)
    beat(sharing, clock, 10, alive=2, busy=1, me_busy=True)
    assert sharing.fraction(AWS) == pytest.approx(1 - RESERVE)

    beat(sharing, clock, 2, alive=2, busy=2, me_busy=True)  # the other got work
    assert sharing.fraction(AWS) == pytest.approx((1 - RESERVE) / 2)

    beat(sharing, clock, 2, alive=2, busy=1, me_busy=True)  # and is done
    done, parts = clock.now, []
    while clock.now < done + GRACE + AWS + 1:
        parts.append((clock.now - done, sharing.fraction(AWS)))
        clock.now += 0.5
        if clock.now - done >= 2 and (clock.now - done) % 2 == 0:
            sharing.seen(alive=2, busy=1, me_busy=True, at=clock.now)
    assert all(part == pytest.approx((1 - RESERVE) / 2) for after, part in parts if after < GRACE + AWS)
    assert parts[-1][1] == pytest.approx(1 - RESERVE)


def test_a_longer_window_waits_longer_to_raise() -> None:
    clock = Clock()
    sharing = Sharing(clock=clock)
    beat(sharing, clock, 80, alive=2, busy=2, me_busy=True)
    beat(sharing, clock, 10, alive=2, busy=1, me_busy=True)
    assert sharing.fraction(AWS) == pytest.approx(1 - RESERVE)
    assert sharing.fraction(66.0) == pytest.approx((1 - RESERVE) / 2)  # a minute's window still holds old sends
    beat(sharing, clock, 64, alive=2, busy=1, me_busy=True)
    assert sharing.fraction(66.0) == pytest.approx(1 - RESERVE)
    assert sharing.fraction(AWS) == pytest.approx(1 - RESERVE)


def test_a_raise_waits_a_minute_at_most_however_long_the_window() -> None:
    """A replica that just started keeps an idle part for a minute of GoBlue's hourly window, not for the hour."""
    clock = Clock()
    sharing = Sharing(clock=clock)
    beat(sharing, clock, 70, alive=1, busy=1, me_busy=True)
    assert sharing.fraction(3960.0) == pytest.approx(RESERVE / 2)
    beat(sharing, clock, 4, alive=1, busy=1, me_busy=True)
    assert sharing.fraction(3960.0) == pytest.approx(1 - RESERVE)


@dataclass
class Replica:
    starts: float
    stops: float
    phase: float
    busy_from: list[float]
    sharing: Sharing = field(init=False)
    published_idle: bool = True
    joined: bool = False
    last_beat: float = 0.0
    allowed: list[tuple[float, float]] = field(default_factory=list)

    def alive_at(self, t: float) -> bool:
        return self.starts <= t < self.stops

    def busy_at(self, t: float) -> bool:
        return sum(1 for moment in self.busy_from if moment <= t) % 2 == 1


replica = st.builds(
    Replica,
    starts=st.sampled_from([0.0, 0.0, 3.0, 11.0]),
    stops=st.sampled_from([60.0, 60.0, 17.0, 31.0]),
    phase=st.floats(min_value=0, max_value=1.9),
    busy_from=st.lists(st.floats(min_value=0, max_value=55), max_size=6).map(sorted),
)


@settings(max_examples=150, deadline=None)
@given(
    replicas=st.lists(replica, min_size=1, max_size=5),
    stall=st.tuples(st.integers(min_value=0, max_value=29), st.integers(min_value=0, max_value=12)),
    span=st.sampled_from([AWS, 66.0]),
)
def test_whatever_each_replica_saw_together_they_never_send_over_the_limit(
    replicas: list[Replica], stall: tuple[int, int], span: float
) -> None:
    """Replicas start, stop, get work and finish it; each heartbeats every 2 s at its own phase; the
    first cannot for a while (a stalled database), long enough, maybe, for its heartbeat to expire
    (here after 5 s) and the others to count it gone. At every moment, what each could have sent
    within the last window (the most it was allowed in it) sums to at most the whole limit."""
    stalled = range(stall[0], stall[0] + stall[1])
    clock = Clock()
    for r in replicas:
        r.sharing = Sharing(clock=clock)
    start, step = clock.now, 0.1
    for tick in range(int(60 / step)):
        t = tick * step
        clock.now = start + t
        # heartbeats in one step run as concurrent transactions: none sees another's of that step
        joined = [o for o in replicas if o.alive_at(t) and o.joined and t - o.last_beat <= 5.0]
        published = {id(o): o.published_idle for o in joined}
        for index, r in enumerate(replicas):
            beats = r.alive_at(t) and abs((t - r.phase) % 2.0) < step / 2
            if beats and not (int(t / 2) in stalled and index == 0):
                alive = [o for o in joined if o is not r] + [r]
                busy = sum(1 for o in alive if o is not r and not published[id(o)]) + r.busy_at(t)
                r.sharing.seen(alive=len(alive), busy=busy, me_busy=r.busy_at(t), at=clock.now)
                r.published_idle, r.joined, r.last_beat = not r.busy_at(t), True, t
            if r.alive_at(t):
                r.allowed.append((t, r.sharing.fraction(span)))
        in_window = [max((part for at, part in r.allowed if t - span < at <= t), default=0.0) for r in replicas]
        assert sum(in_window) <= 1.0 + 1e-9, (t, in_window)


def test_back_from_a_stale_view_a_replica_raises_only_as_any_raise_waits() -> None:
    """Its heartbeats failed while it was busy: the other counted it gone and took the whole part.
    Back, it must not take its old part at once (they would hold 96 % and 48 % together)."""
    clock = Clock()
    sharing = Sharing(clock=clock)
    beat(sharing, clock, 20, alive=2, busy=2, me_busy=True)
    clock.now += 40
    assert sharing.fraction(AWS) == pytest.approx(RESERVE / 4)
    beat(sharing, clock, 2, alive=2, busy=2, me_busy=True)
    assert sharing.fraction(AWS) == pytest.approx(RESERVE / 4)
    beat(sharing, clock, 8, alive=2, busy=2, me_busy=True)
    assert sharing.fraction(AWS) == pytest.approx((1 - RESERVE) / 2)


def test_a_replica_long_alone_takes_its_part_at_once_when_it_gets_work() -> None:
    """The usual incident on one daemon: no ramp. Alone only lately, or just started, it waits as
    any replica does (one that started with it may not have been counted yet)."""
    clock = Clock()
    sharing = Sharing(clock=clock)
    beat(sharing, clock, 80, alive=1, busy=0, me_busy=False)
    beat(sharing, clock, 2, alive=1, busy=1, me_busy=True)
    assert sharing.fraction(AWS) == pytest.approx(1 - RESERVE)

    beat(sharing, clock, 2, alive=2, busy=1, me_busy=True)
    beat(sharing, clock, 2, alive=1, busy=0, me_busy=False)  # the other stopped
    beat(sharing, clock, 2, alive=1, busy=1, me_busy=True)
    assert sharing.fraction(AWS) == pytest.approx(RESERVE / 2)
    beat(sharing, clock, 6, alive=1, busy=1, me_busy=True)
    assert sharing.fraction(AWS) == pytest.approx(1 - RESERVE)

    fresh = Sharing(clock=clock)
    fresh.seen(alive=1, busy=1, me_busy=True, at=clock.now)
    assert fresh.fraction(AWS) == pytest.approx(RESERVE / 2)


def test_the_only_busy_replica_of_several_reaches_its_part_within_a_window_and_grace() -> None:
    clock = Clock()
    sharing = Sharing(clock=clock)
    sharing.seen(alive=3, busy=0, me_busy=False, at=clock.now)
    parts = []
    for _ in range(10):
        clock.now += 2
        sharing.seen(alive=3, busy=1, me_busy=True, at=clock.now)
        parts.append(sharing.fraction(AWS))
    assert parts[0] == pytest.approx(RESERVE / 6) and parts[-1] == pytest.approx(1 - RESERVE)
    assert parts.index(parts[-1]) * 2 <= GRACE + AWS + 2
