"""How daemon replicas share each rate limit: the busy ones split it, the idle ones keep a little.

Every replica says at each heartbeat whether it is busy (it wanted to send under a limit lately)
and reads how many replicas are alive and how many busy. A busy replica takes its part of all but
`RESERVE` of each limit; an idle one may use its part of half the reserve, so the first requests of
a replica that just got work are never over the limit, whoever has not seen it yet; the other half
is for replicas that start before the others have counted them. One replica busy among many keeps
96 % of every limit, and so does a replica alone (a second one may start at any moment); each
kept to 1/N, one busy replica among two used to keep half of it.

Views differ for a while: a replica learns of another's change only at its own next heartbeat, and
a request it sent stays in the vendor's count for one window (a second for AWS, a minute for
most vendors). So a replica lowers its part at once and raises it only once the lower part has
held for `GRACE` plus the window's span (at most `LONGEST_WAIT`): by then every replica whose view
is fresh has seen what it saw, and the requests the others sent at their old parts have left the
vendor's window; a replica that has counted no other for that long raises at once (one daemon
alone has no ramp). A replica whose view is older than `STALE` (its heartbeat fails: the database is
away) keeps to an idle one's part.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

RESERVE = 0.04
"""Of each limit, what busy replicas leave: half for the idle ones (a newly busy one's first
requests), half for replicas that start before the others have counted them."""
STALE = 4.0
"""Seconds a replica trusts its last heartbeat's view (two heartbeats: they go every 2 s)."""
GRACE = 6.0
"""Seconds, beyond a window's span, that a lower part holds before a higher one is used: more than
STALE, so every replica still trusting its view has read the change."""
LONGEST_WAIT = 66.0
"""Seconds of a window's span a raise waits for at most (a padded minute). Waiting out a vendor's
hour would leave a replica that just started with 2 % of GoBlue's hourly limit for that hour;
beyond a minute the vendor's own count (429, Retry-After) is the backstop, as it is for a process
that restarts and forgets what it sent."""


class Sharing:
    """This replica's part of every limit, from what its heartbeats saw."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._parts: deque[tuple[float, float]] = deque()
        """(since, part): each part this replica computed, from the heartbeat that first gave it."""
        self._seen_at: float | None = None
        self._alive = 1
        self._crowded_at = 0.0
        """When a heartbeat last counted another replica alive (or this one began: not known)."""
        self.part = 0.0
        """The part of each limit the last heartbeat gave (what logs and status say)."""

    def seen(self, *, alive: int, busy: int, me_busy: bool, at: float) -> None:
        """A heartbeat that began at `at` found `alive` replicas, `busy` of them busy (this one among
        them when `me_busy`, as it told the others)."""
        idle = RESERVE / 2 / max(alive, 1)
        part = (1 - RESERVE) / max(busy, 1) if me_busy else idle
        with self._lock:
            if not self._parts:  # new here: idle as far as the others know, until they have seen it
                self._parts.append((at, idle))
                self._crowded_at = at
            elif self._seen_at is not None and at - self._seen_at > STALE:
                # back from a stale view, held to an idle part meanwhile; the others may have
                # counted this one gone and taken its part: a raise waits as any other does
                self._parts.append((self._seen_at + STALE, RESERVE / 2 / self._alive))
                self._crowded_at = at
            if alive > 1:
                self._crowded_at = at
            self._seen_at, self.part, self._alive = at, part, max(alive, 1)
            if part != self._parts[-1][1]:
                self._parts.append((at, part))
            while len(self._parts) > 1 and self._parts[1][0] <= at - GRACE - LONGEST_WAIT:
                self._parts.popleft()  # in force before anything a window still counts

    def fraction(self, span: float) -> float:
        """The part of a limit counted over `span` seconds that this replica may use now."""
        now = self._clock()
        with self._lock:
            if self._seen_at is None:
                return 0.0  # not one heartbeat yet: the others leave this one nothing
            if now - self._seen_at > STALE:
                return RESERVE / 2 / self._alive
            since = now - GRACE - min(span, LONGEST_WAIT)
            if self._alive == 1 and self._crowded_at <= since:
                return self.part  # alone for longer than any other could have sent in the window
            held = []
            for began, part in reversed(self._parts):  # each part held from its heartbeat to the next
                held.append(part)
                if began <= since:
                    break
            return min(held)
