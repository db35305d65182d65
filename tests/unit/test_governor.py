"""How many rotations run at once: up to the floor freely, past it only as many as the measured CPU
of each leaves room for on one core."""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import ExitStack

import pytest

from rotator.runtime.governor import Governor


class Process:
    """A process's clock and CPU time, moved by the test; `sleep` runs what the test gave it."""

    def __init__(self) -> None:
        self.now = 100.0
        self.spent = 7.0
        self.sleeps = 0
        self.while_asleep: Callable[[], None] = lambda: pytest.fail("waited for room")

    def run_for(self, seconds: float, cores: float) -> None:
        self.now += seconds
        self.spent += seconds * cores

    def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.sleeps += 1
        self.now += seconds
        self.while_asleep()

    def governor(self, floor: int = 2, busy: float = 0.9) -> Governor:
        return Governor(
            floor=floor, busy=busy, period=1.0, cpu=lambda: self.spent, clock=lambda: self.now, sleep=self.sleep
        )


def test_up_to_the_floor_nothing_waits_whatever_the_cpu() -> None:
    process = Process()
    governor = process.governor(floor=8)
    with ExitStack() as running:
        for _ in range(8):
            process.run_for(1.0, cores=1.0)
            running.enter_context(governor.admitted())
        assert governor.running == governor.peak == 8
    assert governor.running == 0 and governor.peak == 8


def test_past_the_floor_as_many_as_the_measured_cost_leaves_room_for() -> None:
    """Two rotations used a fifth of a core over the last period: nine would use 0.9 of it."""
    process = Process()
    governor = process.governor(floor=2)
    with ExitStack() as running:
        for _ in range(2):
            running.enter_context(governor.admitted())
        process.run_for(1.0, cores=0.2)
        for _ in range(7):
            running.enter_context(governor.admitted())
        assert (governor.limit, governor.running, process.sleeps) == (9, 9, 0)

        process.while_asleep = lambda: running.close()  # the tenth waits until the others end
        with governor.admitted():
            assert governor.running == 1
        assert process.sleeps == 1


def cheap_first(process: Process, governor: Governor) -> None:
    """One rotation that cost next to nothing for a period: the limit rises far past the floor."""
    with governor.admitted():
        process.run_for(1.0, cores=0.001)
        with governor.admitted():
            assert governor.limit == 900


def test_a_saturated_core_holds_new_rotations_until_one_ends() -> None:
    process = Process()
    governor = process.governor(floor=1)
    cheap_first(process, governor)
    held = [governor.admitted() for _ in range(10)]
    for rotation in held:
        rotation.__enter__()
    process.run_for(1.0, cores=1.0)  # ten use the whole core: nine is the most that leaves it 0.1

    def one_ends() -> None:
        held.pop().__exit__(None, None, None)

    process.while_asleep = one_ends
    with governor.admitted():
        assert (governor.limit, governor.running) == (9, 9)
    assert process.sleeps == 2  # ten, then nine running: full until the second ended


def test_the_average_of_what_ran_over_the_period_is_what_the_cpu_is_set_against() -> None:
    """None ran for half the period, ten for the other half on 0.45 of a core: 0.09 a rotation."""
    process = Process()
    governor = process.governor(floor=1)
    cheap_first(process, governor)
    process.run_for(0.5, cores=0.0)
    limits: list[int] = []
    with ExitStack() as running:
        for _ in range(10):
            running.enter_context(governor.admitted())
        process.run_for(0.5, cores=0.9)

        def one_ends() -> None:
            limits.append(governor.limit)
            running.close()

        process.while_asleep = one_ends
        with governor.admitted():
            pass
    assert limits == [10]


def test_never_under_the_floor_and_unchanged_by_a_period_without_cpu() -> None:
    process = Process()
    governor = process.governor(floor=3)
    with ExitStack() as running:
        running.enter_context(governor.admitted())
        process.run_for(1.0, cores=0.0)  # nothing measured: the limit stays where it was
        for _ in range(2):
            running.enter_context(governor.admitted())
        assert governor.limit == 3
        process.run_for(1.0, cores=2.0)  # three on two cores (native code): still three may run
        process.while_asleep = lambda: running.close()
        with governor.admitted():
            assert governor.limit == 3
        assert process.sleeps == 1


def test_a_stop_lets_the_waiting_through_so_they_can_see_it() -> None:
    process = Process()
    governor = process.governor(floor=1)
    stop = threading.Event()
    with governor.admitted(stop):
        process.run_for(1.0, cores=1.0)
        process.while_asleep = stop.set
        with governor.admitted(stop):
            assert governor.running == 2
    assert process.sleeps == 1


def test_threads_beyond_the_limit_wait_and_all_finish() -> None:
    """Real threads and real time: a crowd past the limit never runs more than it at once."""
    governor = Governor(floor=3, busy=0.9, period=0.01, cpu=lambda: 1e9)  # no CPU to spare: the floor rules
    during: list[int] = []
    barrier_lock = threading.Lock()

    def rotation() -> None:
        with governor.admitted():
            with barrier_lock:
                during.append(governor.running)
            threading.Event().wait(0.005)

    threads = [threading.Thread(target=rotation) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(during) == 12 and max(during) <= 3 and governor.running == 0
