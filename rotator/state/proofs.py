"""How long a lease holder may act without asking the state database again.

A proof is the database saying "this lease holds, with `remaining` seconds to run" (by its own
clock, after any lock). The question was sent at a moment this process took on its monotonic
clock, and the database answered later than that, so the lease runs at least until `sent +
remaining`, whatever happened to the answer on its way back (a stalled connection delivers it
late). A side effect may start only while at least half the TTL of the lease is still to run: the
holder's renewals then have that long to keep it alive while the side effect is under way, and a
holder whose last proof is older never acts on it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True)
class Proof:
    until: float
    """Monotonic time until which a side effect may start without a new proof."""
    ttl: timedelta


class Proofs:
    """The latest proof of each lease this process holds; thread-safe."""

    def __init__(self) -> None:
        self._proofs: dict[Hashable, Proof] = {}
        self._lock = threading.Lock()

    def record(self, fence: Hashable, *, sent: float, remaining: float, ttl: timedelta) -> None:
        """The database found `fence` holding for `remaining` seconds when asked at `sent` (monotonic)."""
        proof = Proof(sent + min(remaining, ttl.total_seconds()) - ttl.total_seconds() / 2, ttl)
        with self._lock:
            self._proofs[fence] = proof

    def ttl(self, fence: Hashable) -> timedelta | None:
        """The TTL the lease was taken with, while it is held; None once lost or let go."""
        with self._lock:
            proof = self._proofs.get(fence)
        return None if proof is None else proof.ttl

    def fresh(self, fence: Hashable) -> bool:
        """Whether a side effect may start now on the strength of the last proof."""
        with self._lock:
            proof = self._proofs.get(fence)
        return proof is not None and time.monotonic() < proof.until

    def forget(self, fence: Hashable) -> None:
        """The lease was lost: nothing may be done on its strength any more."""
        with self._lock:
            self._proofs.pop(fence, None)

    def forget_where(self, let_go: Callable[[Hashable], bool]) -> None:
        """Leases let go: drop the proof of every fence `let_go` is true of."""
        with self._lock:
            for fence in [f for f in self._proofs if let_go(f)]:
                del self._proofs[fence]
