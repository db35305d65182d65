from datetime import UTC, datetime, timedelta

from rotator.engine import gate
from rotator.policy.rules import Cutover
from rotator.state.schema import Rotation

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def promoted(at: datetime = T0) -> Rotation:
    return Rotation(id="r", promoted_at=at)


def test_min_soak_opens_the_gate_once_elapsed() -> None:
    cutover = Cutover(min_soak=timedelta(hours=1))
    shut = gate.evaluate(cutover, promoted(), T0 + timedelta(minutes=59))
    assert not shut.open and shut.check_again_at == T0 + timedelta(hours=1)
    assert gate.evaluate(cutover, promoted(), T0 + timedelta(hours=1)).open


def test_an_unavailable_signal_never_counts_as_passed() -> None:
    """A required signal the provider cannot give keeps the gate shut, however long the soak."""
    cutover = Cutover(min_soak=timedelta(0), require=["old_key_idle"])
    verdict = gate.evaluate(cutover, promoted(), T0 + timedelta(days=365))
    assert not verdict.open
    assert "old_key_idle: unavailable" in verdict.describe()


def test_max_wait_times_the_gate_out() -> None:
    cutover = Cutover(require=["consumers"], max_wait=timedelta(hours=2), on_timeout="hold")
    assert not gate.evaluate(cutover, promoted(), T0 + timedelta(hours=1)).timed_out
    assert gate.evaluate(cutover, promoted(), T0 + timedelta(hours=2)).timed_out
