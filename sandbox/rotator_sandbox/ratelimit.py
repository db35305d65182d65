"""Fixed-window request counters per key, as the vendors describe their limits."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field


@dataclass
class Window:
    limit: int
    seconds: float
    _counts: dict[str, tuple[float, int]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def hit(self, who: str) -> tuple[bool, int, float]:
        """Count one request: (allowed, remaining, epoch seconds when the window resets)."""
        now = time.time()
        with self._lock:
            start, count = self._counts.get(who, (now, 0))
            if now >= start + self.seconds:
                start, count = now, 0
            count += 1
            self._counts[who] = (start, count)
        return count <= self.limit, max(0, self.limit - count), start + self.seconds

    def remaining(self, who: str) -> int:
        with self._lock:
            start, count = self._counts.get(who, (time.time(), 0))
        return self.limit if time.time() >= start + self.seconds else max(0, self.limit - count)
