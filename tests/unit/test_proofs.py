"""How long a lease holder trusts its fence after the last proof (concepts.md promise 6): a side
effect starts only while half the TTL is still to run, counted from when the proof was asked for.
A fake monotonic clock moves time; nothing here depends on how fast the machine is."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

import pytest

from rotator.state import proofs as proofs_module
from rotator.state.proofs import Proofs

TTL = timedelta(seconds=10)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    now = SimpleNamespace(t=1000.0)
    monkeypatch.setattr(proofs_module, "time", SimpleNamespace(monotonic=lambda: now.t))
    return now


def test_promise_6_a_proof_is_trusted_until_half_the_ttl_is_left(clock: SimpleNamespace) -> None:
    """Asked at 1000 with the whole TTL (10 s) to run: a side effect may start until 1005, not at it."""
    proofs = Proofs()
    proofs.record("fence", sent=1000.0, remaining=10.0, ttl=TTL)
    clock.t = 1004.99
    assert proofs.fresh("fence")
    clock.t = 1005.0
    assert not proofs.fresh("fence")  # a holder trusting it longer acts when another may have the lease


def test_promise_6_a_proof_counts_from_when_it_was_asked_for(clock: SimpleNamespace) -> None:
    """An answer that came 4 s late (sent at 996) leaves 1 s, not 5, to act on."""
    proofs = Proofs()
    clock.t = 1000.0
    proofs.record("fence", sent=996.0, remaining=10.0, ttl=TTL)
    clock.t = 1000.99
    assert proofs.fresh("fence")
    clock.t = 1001.0
    assert not proofs.fresh("fence")


def test_promise_6_a_lease_with_less_left_than_its_ttl_is_trusted_less(clock: SimpleNamespace) -> None:
    """7 s of a 10 s lease left: only 2 s until half the TTL remains."""
    proofs = Proofs()
    proofs.record("fence", sent=1000.0, remaining=7.0, ttl=TTL)
    clock.t = 1001.99
    assert proofs.fresh("fence")
    clock.t = 1002.0
    assert not proofs.fresh("fence")


def test_promise_6_more_remaining_than_the_ttl_is_capped_at_the_ttl(clock: SimpleNamespace) -> None:
    """A lease the database says runs longer than the holder's TTL (another's renewal, a skewed
    writer) is trusted only as if it had the TTL left."""
    proofs = Proofs()
    proofs.record("fence", sent=1000.0, remaining=60.0, ttl=TTL)
    clock.t = 1005.0
    assert not proofs.fresh("fence")


def test_promise_6_a_lease_with_half_its_ttl_left_or_less_is_never_trusted(clock: SimpleNamespace) -> None:
    proofs = Proofs()
    proofs.record("fence", sent=1000.0, remaining=5.0, ttl=TTL)
    assert not proofs.fresh("fence")


def test_promise_6_a_lost_or_released_lease_proves_nothing(clock: SimpleNamespace) -> None:
    proofs = Proofs()
    assert not proofs.fresh("a") and proofs.ttl("a") is None
    for name in ("a", "b", "c"):
        proofs.record(name, sent=1000.0, remaining=10.0, ttl=TTL)
    assert proofs.ttl("a") == TTL
    proofs.forget("a")
    assert not proofs.fresh("a") and proofs.ttl("a") is None
    proofs.forget_where(lambda f: f == "b")
    assert not proofs.fresh("b") and proofs.ttl("b") is None
    assert proofs.fresh("c") and proofs.ttl("c") == TTL
    proofs.forget("never-recorded")  # nothing to forget is no error
