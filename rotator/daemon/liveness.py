"""Is the daemon alive — not "has it finished its work lately"?

systemd's watchdog and `/healthz` ask whether the daemon should be restarted. A restart helps
when the daemon is stuck, never because its work is long: a tick that drains an incident of
thousands of rotations is the daemon doing its job. So alive means: the main loop turns, the
state database's client is not hung (a probe every few seconds answers or fails within a bound;
a database that refuses is "not ready", not "dead"), and no worker is in one step for longer
than `engine.step_deadline`, which bounds every step's own retries.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager


class Liveness:
    def __init__(self, *, step_deadline: float, probe_bound: float, loop_bound: float) -> None:
        self.step_deadline = step_deadline
        self.probe_bound = probe_bound
        """Seconds a database probe may be under way before the client counts as hung."""
        self.loop_bound = loop_bound
        """Seconds the main loop may go without turning."""
        self._loop = time.monotonic()
        self._probe: float | None = None
        self._steps: dict[int, float] = {}
        self._lock = threading.Lock()

    def beat(self) -> None:
        """The main loop turned."""
        self._loop = time.monotonic()

    @contextmanager
    def probing(self) -> Iterator[None]:
        """Around one probe of the state database, whatever its outcome."""
        self._probe = time.monotonic()
        try:
            yield
        finally:
            self._probe = None

    def step_began(self) -> None:
        with self._lock:
            self._steps[threading.get_ident()] = time.monotonic()

    def step_ended(self) -> None:
        with self._lock:
            self._steps.pop(threading.get_ident(), None)

    def problem(self) -> str | None:
        """Why the daemon is not alive, or None when it is."""
        now = time.monotonic()
        if now - self._loop > self.loop_bound:
            return f"the main loop has not turned for {now - self._loop:.0f} s"
        probe = self._probe
        if probe is not None and now - probe > self.probe_bound:
            return f"a state database call has hung for {now - probe:.0f} s"
        with self._lock:
            oldest = min(self._steps.values(), default=None)
        if oldest is not None and now - oldest > self.step_deadline:
            return f"a worker has been in one step for {now - oldest:.0f} s (engine.step_deadline)"
        return None
