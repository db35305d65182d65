"""Client-side rate limits: never more than N requests in any window, across threads, in order."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from itertools import pairwise
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rotator.app import App
from rotator.errors import InputError, Stopped
from rotator.runtime import ratelimit
from rotator.runtime.ratelimit import Limit, Window
from rotator.runtime.sharing import Sharing
from rotator.settings import config
from rotator.settings.policies import PolicySet


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@settings(max_examples=300, deadline=None)
@given(
    requests=st.integers(min_value=1, max_value=20),
    calls=st.lists(
        st.tuples(
            st.floats(min_value=0, max_value=0.5), st.one_of(st.just(0.0), st.floats(min_value=0, max_value=0.8))
        ),
        min_size=1,
        max_size=120,
    ),
)
def test_no_window_ever_holds_more_than_the_limit_even_when_callers_wake_late(
    requests: int, calls: list[tuple[float, float]]
) -> None:
    """A thread's sleep can end late (an interpreter busy with 64 rotations): what the server
    counts is when requests leave, so late ones must not bunch up with the ones after them."""
    time = FakeTime()
    late = [0.0]

    def oversleep(seconds: float) -> None:
        time.now += seconds + late[0]

    window = Window(Limit(requests, timedelta(seconds=1)), clock=time.clock, sleep=oversleep)
    sent = []
    for gap, lateness in calls:
        time.now += gap
        late[0] = lateness
        window.take()
        sent.append(time.now)
    for i, start in enumerate(sent):
        assert sum(1 for t in sent[i:] if t < start + 1.0) <= requests


def test_a_burst_within_the_limit_does_not_wait_and_the_next_waits_a_window() -> None:
    time = FakeTime()
    window = Window(Limit(100, timedelta(minutes=1)), clock=time.clock, sleep=time.sleep)
    for _ in range(100):
        window.take()
    assert time.now == 0.0
    window.take()
    assert 60 <= time.now <= 66 and window.waited == time.now


def test_a_per_second_quota_is_kept_as_a_steady_pace_not_in_bursts() -> None:
    """Fifty writes sent at once reach AWS's count over a quarter of a second: spaced instead, no
    second the server counts can take the tail of one burst and the head of the next."""
    time = FakeTime()
    window = Window(Limit(50, timedelta(seconds=1)), clock=time.clock, sleep=time.sleep)
    sent = []
    for _ in range(200):
        window.take()
        sent.append(time.now)
    gaps = [later - earlier for earlier, later in pairwise(sent)]
    assert min(gaps) >= 1.0 / 50 and sent[-1] <= 200 * 1.1 / 50


@pytest.mark.parametrize(("busy", "each", "then"), [(1, 48, 66.0), (3, 16, 66.0), (64, 1, 88.0)])
def test_replicas_split_a_limit_so_that_together_they_stay_within_it(busy: int, each: int, then: float) -> None:
    """Busy replicas share all but the reserve of a limit (runtime/sharing.py), each its part at
    once; a request over it waits a window. A part under one request a window (the last of 64:
    0.75) sends one every few windows, not one every window."""
    time = FakeTime()
    sharing = Sharing(clock=time.clock)

    def sleep(seconds: float) -> None:  # heartbeats go on every 2 s while it waits
        time.sleep(seconds)
        if time.now >= beats[-1] + 2:
            beats.append(time.now)
            sharing.seen(alive=busy, busy=busy, me_busy=True, at=time.now)

    window = Window(Limit(50, timedelta(minutes=1)), clock=time.clock, sleep=sleep)
    beats = [float(moment) for moment in range(-100, 1, 2)]
    for moment in beats:
        sharing.seen(alive=busy, busy=busy, me_busy=True, at=moment)
    ratelimit.share_with(sharing)
    try:
        for _ in range(each):
            window.take()
        assert time.now == 0.0
        window.take()
        assert then - 0.5 <= time.now <= then + 0.5  # one more waits a window (or more)
    finally:
        ratelimit.share_with(None)


def _stopping_at(time: FakeTime, moment: float) -> tuple[threading.Event, Callable[[float], None]]:
    """A stop event, and a sleep that sets it once the fake time reaches `moment` (a Ctrl-C then)."""
    stop = threading.Event()

    def sleep(seconds: float) -> None:
        time.sleep(seconds)
        if time.now >= moment:
            stop.set()

    return stop, sleep


def test_a_request_waiting_for_a_slot_is_not_sent_once_the_process_stops() -> None:
    """Ctrl-C or SIGTERM while rotations wait on GoBlue's hourly window: they stop at once
    (Stopped, a temporary error the engine tries again) instead of waiting the hour to send."""
    time = FakeTime()
    stop, sleep = _stopping_at(time, 10)
    window = Window(Limit(1, timedelta(hours=1)), clock=time.clock, sleep=sleep)
    ratelimit.end_waits_with(stop)
    try:
        window.take()
        with pytest.raises(Stopped) as stopped:
            window.take()
        assert 10 <= time.now <= 10 + ratelimit.RECHECK and stopped.value.temporary
        assert str(stopped.value) == "not sent: rotator is stopping" and stopped.value.retry_after == 0
        assert len(window._sent) == 1  # the one stopped was never counted as sent
        with pytest.raises(Stopped):
            window.take()
    finally:
        ratelimit.end_waits_with(None)
    window.take()  # a command run afterwards in the same process waits as before
    assert time.now >= 3960


def test_a_replica_before_its_first_heartbeat_sends_nothing() -> None:
    """The others leave it no part yet: it waits (here until the process stops)."""
    time = FakeTime()
    stop, sleep = _stopping_at(time, 30)
    window = Window(Limit(50, timedelta(seconds=1)), clock=time.clock, sleep=sleep)
    ratelimit.share_with(Sharing(clock=time.clock))
    ratelimit.end_waits_with(stop)
    try:
        with pytest.raises(Stopped):
            window.take()
        assert time.now >= 30 and not window._sent
    finally:
        ratelimit.share_with(None)
        ratelimit.end_waits_with(None)


def test_a_replica_whose_caller_waits_out_a_long_window_stays_busy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Waiting an hour for GoBlue's window is wanting to send: a replica that said idle meanwhile
    would drop to an idle part and wait longer still."""
    time = FakeTime()
    monkeypatch.setattr(ratelimit, "time", SimpleNamespace(monotonic=lambda: 1000.0 + time.now))
    sharing = Sharing(clock=time.clock)
    busy: list[bool] = []

    def sleep(seconds: float) -> None:
        time.sleep(seconds)
        if time.now >= len(busy) * 2 + 2:  # a heartbeat every 2 s asks whether this one is busy
            busy.append(ratelimit.wanted_within(10.0))
            sharing.seen(alive=1, busy=1, me_busy=True, at=time.now)

    window = Window(Limit(1, timedelta(minutes=1)), clock=time.clock, sleep=sleep)
    for moment in range(-100, 1, 2):
        sharing.seen(alive=1, busy=1, me_busy=True, at=float(moment))
    ratelimit.share_with(sharing)
    try:
        window.take()
        window.take()
    finally:
        ratelimit.share_with(None)
    assert time.now >= 60 and len(busy) > 20 and all(busy)


@pytest.mark.parametrize("limit", [Limit(0, timedelta(seconds=1)), Limit(5, timedelta(0)), Limit(5, -timedelta(1))])
def test_a_limit_that_allows_nothing_is_refused(limit: Limit) -> None:
    with pytest.raises(ValueError, match=r"^a rate limit needs at least one request per positive period$"):
        Window(limit)


def test_a_caller_waiting_behind_an_idle_part_takes_a_raise_at_once() -> None:
    """Sixteen workers queued behind an idle replica's two requests a window must not each wait
    half a window once the replica's part has risen (an incident ran at 1 write/s for 17 s that way)."""
    time = FakeTime()
    sharing = Sharing(clock=time.clock)

    def sleep(seconds: float) -> None:  # the next heartbeat finds it busy while it waits
        sharing.seen(alive=1, busy=1, me_busy=True, at=time.now)
        time.sleep(seconds)

    window = Window(Limit(50, timedelta(seconds=1)), clock=time.clock, sleep=sleep)
    for moment in range(-100, 1, 2):  # alone for long, idle: two requests a window
        sharing.seen(alive=1, busy=0, me_busy=False, at=float(moment))
    ratelimit.share_with(sharing)
    try:
        window.take()
        window.take()  # paced at two a window it would wait 0.55 s
        assert time.now == pytest.approx(ratelimit.RECHECK)
    finally:
        ratelimit.share_with(None)


def test_a_command_run_by_hand_has_the_whole_limit_and_says_it_wanted_to_send() -> None:
    time = FakeTime()
    window = Window(Limit(50, timedelta(minutes=1)), clock=time.clock, sleep=time.sleep)
    for _ in range(50):
        window.take()
    assert time.now == 0.0 and ratelimit.wanted_within(5.0)
    window.take()
    assert time.now == pytest.approx(66.0)


def test_a_request_leaves_the_window_only_after_the_padded_period() -> None:
    """The server counts a request a little after it is counted here: one sent just past `per`
    (but inside the pad of 10 %) could still share the server's window."""
    time = FakeTime()
    window = Window(Limit(2, timedelta(seconds=60)), clock=time.clock, sleep=time.sleep)
    window.take()
    window.take()
    time.now = 60.001  # the plain minute is over, the pad is not
    window.take()
    assert time.now == pytest.approx(66.0)


def test_a_short_period_is_padded_by_50_ms_at_least() -> None:
    time = FakeTime()
    window = Window(Limit(1, timedelta(seconds=0.2)), clock=time.clock, sleep=time.sleep)
    window.take()
    window.take()
    assert time.now == pytest.approx(0.25)  # 10 % would be 0.22


def test_an_hourly_limit_counts_the_hour() -> None:
    time = FakeTime()
    window = Window(Limit(3, timedelta(hours=1)), clock=time.clock, sleep=time.sleep)
    sent = []
    for _ in range(4):
        window.take()
        sent.append(time.now)
        time.now += 60
    assert sent[:3] == [0, 60, 120] and sent[3] >= 3600


def test_each_provider_instance_gets_its_vendors_limits_unless_rotator_yaml_says_otherwise(tmp_path: Path) -> None:
    (tmp_path / "rotator.yaml").write_text("""\
providers:
  tb: {type: texting-blue}
  gb: {type: goblue}
  bw: {type: brandwave, admin_token: {env: BW}}
  tb-enterprise: {type: texting-blue, rate_limits: [{requests: 5000, per: 1m}]}
  gb-unlimited: {type: goblue, rate_limits: []}
""")
    app = App(config.load(tmp_path / "rotator.yaml", environ={}), PolicySet())
    minute, hour = timedelta(minutes=1), timedelta(hours=1)
    assert app.rate_limits("tb") == [Limit(60, minute)]
    assert app.rate_limits("gb") == [Limit(100, minute), Limit(1000, hour)]
    assert app.rate_limits("bw") == []
    assert app.rate_limits("tb-enterprise") == [Limit(5000, minute)]
    assert app.rate_limits("gb-unlimited") == []


def test_a_limit_of_nothing_is_refused_with_where_it_is(tmp_path: Path) -> None:
    (tmp_path / "rotator.yaml").write_text(
        "providers:\n  tb: {type: texting-blue, rate_limits: [{requests: 0, per: 1m}]}\n"
    )
    with pytest.raises(InputError, match=r"rotator.yaml:2"):
        config.load(tmp_path / "rotator.yaml", environ={})
