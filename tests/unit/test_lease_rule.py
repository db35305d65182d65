"""The lease rule itself: who may take a secret's lease, and when."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from rotator.errors import LeaseHeld
from rotator.state.db import StateDB


@pytest.fixture
def db(tmp_path: Path) -> Iterator[StateDB]:
    state = StateDB(f"sqlite:///{tmp_path}/state.db")
    yield state
    state.close()


@pytest.fixture
def live_process() -> Iterator[int]:
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield process.pid
    process.kill()
    process.wait()


def test_a_live_holder_on_this_host_keeps_its_lease(db: StateDB, live_process: int) -> None:
    """A lease held by a running process of this host is not taken before it expires."""
    holder = f"{socket.gethostname()}:{live_process}:aaaa"
    db.acquire_lease("s", holder, timedelta(minutes=5))
    with pytest.raises(LeaseHeld, match=holder):
        db.acquire_lease("s", "other:1:bbbb", timedelta(minutes=5))
    with pytest.raises(LeaseHeld):
        db.acquire_lease("s", f"{socket.gethostname()}:{live_process}:cccc", timedelta(minutes=5))


def test_a_live_holder_identified_exactly_keeps_its_lease(db: StateDB, live_process: int) -> None:
    """Same boot, same PID namespace, its pid alive with the same start time: the holder is alive."""
    from rotator.state.identity import _boot_id, _pid_namespace, _start_time

    holder = f"{socket.gethostname()}:{live_process}:aaaa:{_boot_id()}:{_pid_namespace()}:{_start_time(live_process)}"
    db.acquire_lease("s", holder, timedelta(minutes=5))
    with pytest.raises(LeaseHeld, match="aaaa"):
        db.acquire_lease("s", "other:1:bbbb", timedelta(minutes=5))


def test_a_holder_on_another_host_keeps_its_lease_until_it_expires(db: StateDB) -> None:
    db.acquire_lease("s", "elsewhere:1:aaaa", timedelta(minutes=5))
    with pytest.raises(LeaseHeld):
        db.acquire_lease("s", "me:2:bbbb", timedelta(minutes=5))


def test_an_expired_lease_is_taken(db: StateDB) -> None:
    db.acquire_lease("s", "elsewhere:1:aaaa", timedelta(seconds=-1))
    db.acquire_lease("s", "me:2:bbbb", timedelta(minutes=5))
    with pytest.raises(LeaseHeld, match="me:2:bbbb"):
        db.acquire_lease("s", "elsewhere:1:aaaa", timedelta(minutes=5))


def test_the_holder_renews_its_own_lease(db: StateDB) -> None:
    db.acquire_lease("s", "me:2:bbbb", timedelta(minutes=5))
    db.acquire_lease("s", "me:2:bbbb", timedelta(minutes=5))
    db.release_lease("s", "me:2:bbbb")
    db.acquire_lease("s", "elsewhere:1:aaaa", timedelta(minutes=5))


@pytest.mark.parametrize("unknown", ["boot", "namespace"])
def test_a_holder_whose_boot_or_pid_namespace_is_unknown_keeps_its_lease_until_it_expires(
    db: StateDB, monkeypatch: pytest.MonkeyPatch, unknown: str
) -> None:
    """On a host where /proc does not say the boot id or the PID namespace ("?"), no pid can be
    judged — it may be another boot's or another container's: a holder so named is never taken
    over early, even when no process of its pid and start time is to be seen here."""
    from rotator.state import identity

    monkeypatch.setattr(identity, "_boot_id" if unknown == "boot" else "_pid_namespace", lambda: "?")
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    started = identity._start_time(process.pid)
    process.kill()
    process.wait()
    holder = f"{socket.gethostname()}:{process.pid}:aaaa:{identity._boot_id()}:{identity._pid_namespace()}:{started}"
    db.acquire_lease("s", holder, timedelta(minutes=5))
    with pytest.raises(LeaseHeld, match="aaaa"):
        db.acquire_lease("s", "other:1:bbbb", timedelta(minutes=5))
