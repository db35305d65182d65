"""Client-side rate limits: never more than N requests in any window, across threads, in order."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from rotator.ratelimit import Limit, Window


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@settings(max_examples=200, deadline=None)
@given(
    requests=st.integers(min_value=1, max_value=20),
    gaps=st.lists(st.floats(min_value=0, max_value=0.5), min_size=1, max_size=120),
)
def test_no_window_ever_holds_more_than_the_limit(requests: int, gaps: list[float]) -> None:
    time = FakeTime()
    window = Window(Limit(requests, timedelta(seconds=1)), clock=time.clock, sleep=time.sleep)
    sent = []
    for gap in gaps:
        time.now += gap
        window.take()
        sent.append(time.now)
    for i, start in enumerate(sent):
        assert sum(1 for t in sent[i:] if t < start + 1.0) <= requests


def test_a_burst_within_the_limit_does_not_wait_and_the_next_waits_a_window() -> None:
    time = FakeTime()
    window = Window(Limit(50, timedelta(seconds=1)), clock=time.clock, sleep=time.sleep)
    for _ in range(50):
        window.take()
    assert time.now == 0.0
    window.take()
    assert 1.0 <= time.now <= 1.03 and window.waited == time.now


def test_an_hourly_limit_counts_the_hour() -> None:
    time = FakeTime()
    window = Window(Limit(3, timedelta(hours=1)), clock=time.clock, sleep=time.sleep)
    sent = []
    for _ in range(4):
        window.take()
        sent.append(time.now)
        time.now += 60
    assert sent[:3] == [0, 60, 120] and sent[3] >= 3600
