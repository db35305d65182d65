"""Client-side rate limits, shared by every concurrent rotation of the process, and split between
daemon replicas (`share_with`: runtime/sharing.py says how).

A provider or AWS answers a request over its quota with 429 / ThrottlingException; an incident
that leans on those retries is slower than one that never sends them, and a vendor may lock an
account that keeps trying. So each limit the vendor documents (or the operator configures) is a
window that a request waits on before it is sent: at most `requests` in any `per`, counted the
vendor's way ("100 per minute", "1,000 per hour", "50 per second"). The window is padded by 10%
(at least 50 ms): a request reaches the server's count some time after it is counted here
(signing, the network, the server's own queue), and the server must never count one too many in
any of its seconds.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta

from rotator.errors import Stopped
from rotator.runtime.sharing import Sharing


@dataclass(frozen=True)
class Limit:
    requests: int
    per: timedelta

    def __str__(self) -> str:
        return f"{self.requests} per {self.per.total_seconds():g} s"


class Window:
    """At most `limit.requests` sends in any `limit.per`; `take` waits for a free slot."""

    def __init__(
        self,
        limit: Limit,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if limit.requests < 1 or limit.per <= timedelta(0):
            raise ValueError("a rate limit needs at least one request per positive period")
        self.limit = limit
        seconds = limit.per.total_seconds()
        self._span = seconds + max(seconds * 0.1, 0.05)
        # A per-second quota (AWS's writes) is kept as a steady pace: fifty requests sent at once
        # reach the server's count over more than the pad (a quarter of a second at moto), so the
        # tail of one burst would be counted in the same second as the head of the next. A longer
        # window's pad (six seconds a minute) absorbs its bursts, and pacing it would make a
        # handful of calls wait seconds apart.
        self._paced = seconds <= 1
        self._sent: deque[float] = deque()
        self._last = -math.inf
        self._clock, self._sleep = clock, sleep
        self._lock = threading.Lock()
        self.waited = 0.0
        """Seconds callers spent waiting here, in total (metrics and benchmarks read it)."""

    def take(self) -> None:
        """Wait until a request may be sent, and count it as sent when the wait is over.

        Counted then, not when the wait began: a thread whose sleep ends late (an interpreter busy
        with 64 rotations) is counted when it really sends, so late ones never bunch up with the
        ones after them. Callers wait one after another, holding the lock, in about the order they came.
        A replica's part is read again at each turn of the wait: a raise reaches the callers queued
        behind a low part at once, not one window each.
        """
        global _wanted_at
        started = self._clock()
        with self._lock:
            while True:
                # a replica whose callers wait out a long window is busy, not idle
                _wanted_at = time.monotonic()
                sharing, ending = _sharing, _ending
                if ending is not None and ending.is_set():
                    raise Stopped("not sent: rotator is stopping", retry_after=0)
                share = self.limit.requests * (sharing.fraction(self._span) if sharing is not None else 1.0)
                allowed = max(1, int(share))
                now = self._clock()
                while self._sent and self._sent[0] <= now - self._span:
                    self._sent.popleft()
                ready = self._sent[0] + self._span if len(self._sent) >= allowed else now
                if self._paced and self._sent:
                    ready = max(ready, self._sent[-1] + self._span / allowed)
                if share < 1:  # a part under one request a window: one request every few windows
                    ready = max(ready, self._last + self._span / share) if share > 0 else math.inf
                if ready <= now:
                    self._sent.append(now)
                    self._last = now
                    self.waited += now - started
                    return
                # at least a millisecond: a pause below a float's resolution would never end
                recheck = RECHECK if sharing is not None or ending is not None else math.inf
                self._sleep(max(min(ready - now, recheck), 0.001))


_sharing: Sharing | None = None
RECHECK = 0.25
"""Seconds a replica waiting on a limit sleeps at most before it reads its part again."""
_wanted_at = -math.inf
_ending: threading.Event | None = None


def share_with(sharing: Sharing | None) -> None:
    """This process is a daemon replica, one of several that may send under the same limits: each
    keeps to the part `sharing` gives it, so all of them together stay within each limit (None:
    the whole of each limit, as a command run by hand)."""
    global _sharing
    _sharing = sharing


def end_waits_with(stop: threading.Event | None) -> None:
    """Once `stop` is set, a request waiting for a slot is not sent (Stopped): a Ctrl-C or a
    SIGTERM must not wait out a vendor's window (GoBlue's is an hour) to stop."""
    global _ending
    _ending = stop


def wanted_within(seconds: float) -> bool:
    """Whether this process asked to send under any limit in the last `seconds` (it is busy)."""
    return time.monotonic() - _wanted_at < seconds


def take_all(windows: Sequence[Window]) -> None:
    for window in windows:
        window.take()


_shared: dict[tuple[object, ...], Window] = {}
_shared_lock = threading.Lock()


def shared(key: tuple[object, ...], limit: Limit) -> Window:
    """One window per key in the process: AWS's quota is per account and region, not per client."""
    with _shared_lock:
        if key not in _shared:
            _shared[key] = Window(limit)
        return _shared[key]
