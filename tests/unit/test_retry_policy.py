"""The retry policy (engine/retry.py): a temporary error is tried again later and later, as soon as
Retry-After says when it says, until the step has failed for step_deadline; then giving up rolls
back before promotion, holds from promotion on, and ends a rollback that cannot finish as failed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from rotator.engine.retry import GiveUp, backoff, giving_up, retry_at
from rotator.errors import KeyRefused, NotYet, ProviderUnavailable
from rotator.lifecycle import State
from rotator.settings.models import EngineSettings

SETTINGS = EngineSettings(retry_base=timedelta(seconds=2), retry_max=timedelta(minutes=5))
NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def no_jitter(low: float, high: float) -> float:
    return low


def test_the_backoff_doubles_from_retry_base_up_to_retry_max() -> None:
    assert [backoff(n, SETTINGS).total_seconds() for n in range(9)] == [2, 4, 8, 16, 32, 64, 128, 256, 300]
    assert backoff(500, SETTINGS) == timedelta(minutes=5)


def test_a_temporary_error_is_retried_after_the_backoff_with_at_most_ten_percent_more() -> None:
    exc = ProviderUnavailable("503", provider="bw")
    at = retry_at(exc, attempts=3, failing_since=NOW, now=NOW, settings=SETTINGS, jitter=no_jitter)
    assert at == NOW + timedelta(seconds=16)
    latest = retry_at(exc, attempts=3, failing_since=NOW, now=NOW, settings=SETTINGS, jitter=lambda lo, hi: hi)
    assert latest == NOW + timedelta(seconds=16 * 1.1)


def test_retry_after_sets_the_delay_whatever_the_attempt() -> None:
    exc = ProviderUnavailable("429", provider="bw", retry_after=30)
    for attempts in (0, 5, 20):
        at = retry_at(exc, attempts=attempts, failing_since=NOW, now=NOW, settings=SETTINGS, jitter=no_jitter)
        assert at == NOW + timedelta(seconds=30)


def test_a_permanent_error_is_never_retried() -> None:
    assert retry_at(KeyRefused("401", provider="bw"), attempts=0, failing_since=NOW, now=NOW, settings=SETTINGS) is None


def test_a_temporary_error_counts_as_permanent_once_the_step_failed_for_step_deadline() -> None:
    exc = NotYet("not accepted yet")
    just_before = NOW - SETTINGS.step_deadline + timedelta(seconds=1)
    assert retry_at(exc, attempts=9, failing_since=just_before, now=NOW, settings=SETTINGS) is not None
    at_deadline = NOW - SETTINGS.step_deadline
    assert retry_at(exc, attempts=9, failing_since=at_deadline, now=NOW, settings=SETTINGS) is None


@pytest.mark.parametrize(
    ("state", "then"),
    [
        (State.REQUESTED, GiveUp.ROLL_BACK),
        (State.CREATING, GiveUp.ROLL_BACK),
        (State.STAGED, GiveUp.ROLL_BACK),
        (State.PROBED, GiveUp.ROLL_BACK),
        (State.PROMOTED, GiveUp.HOLD),  # the new key is current: nothing is undone without a person
        (State.CUTOVER_WAIT, GiveUp.HOLD),
        (State.REVOKING, GiveUp.HOLD),
        (State.VERIFYING, GiveUp.HOLD),
        (State.ROLLING_BACK, GiveUp.FAIL),
    ],
)
def test_giving_up_rolls_back_only_before_promotion(state: State, then: GiveUp) -> None:
    assert giving_up(state) is then
