"""How many rotations one process runs at once, by measured contention rather than a fixed number.

A rotation spends most of its wall time waiting on the network and a little of the interpreter's
one core (the GIL) signing, parsing and writing state. Once that core is saturated, another running
rotation adds no throughput: it only lengthens every other rotation's turn for the GIL, and the CPU
each one costs rises with the hand-offs (64 workers made an incident slower than 16). Where that
point lies depends on the providers' latency (a slow vendor needs many rotations waiting to keep
the core busy), so it cannot be a constant: it is measured.

Every `period` the governor reads the CPU the whole process used and how many rotations ran on
average, and sets the limit to the number that would use `busy` of one core at that cost each
(never under `floor`). Starting rotations only while the core is not busy would not do: the
measurement lags by a period, so a crowd of waiting rotations would all start in the lag, then
all wait while the crowd drains — the limit swings between the floor and everyone.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager


class Governor:
    def __init__(
        self,
        *,
        floor: int = 8,
        busy: float = 0.9,
        period: float = 0.5,
        cpu: Callable[[], float] = time.process_time,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.floor, self.busy, self.period = floor, busy, period
        self._cpu, self._clock, self._sleep = cpu, clock, sleep
        self.limit = floor
        """How many may run now; it moves each period with what was measured."""
        self.running = 0
        self.peak = 0
        """The most rotations that ran at once."""
        self._lock = threading.Lock()
        self._admitting = threading.Lock()
        now = clock()
        self._began, self._cpu_then = now, cpu()
        self._changed, self._running_time = now, 0.0

    @contextmanager
    def admitted(self, stop: threading.Event | None = None) -> Iterator[None]:
        """Wait until one more may run (or `stop` is set), and count it as running inside the block.

        One caller at a time waits for room, the others queue on a lock behind it, so a crowd of
        waiting threads does not itself take the core it waits for."""
        with self._admitting:
            while not self._room() and not (stop and stop.is_set()):
                self._sleep(self.period / 5)
            self._count(+1)
        try:
            yield
        finally:
            self._count(-1)

    def _count(self, change: int) -> None:
        with self._lock:
            now = self._clock()
            self._running_time += self.running * (now - self._changed)
            self._changed = now
            self.running += change
            self.peak = max(self.peak, self.running)

    def _room(self) -> bool:
        with self._lock:
            now, spent = self._clock(), self._cpu()
            elapsed = now - self._began
            if elapsed >= self.period:
                ran = (self._running_time + self.running * (now - self._changed)) / elapsed
                used = (spent - self._cpu_then) / elapsed
                if used > 0 and ran > 0:
                    self.limit = max(self.floor, round(ran * self.busy / used))
                self._began, self._cpu_then = now, spent
                self._changed, self._running_time = now, 0.0
            return self.running < self.limit
