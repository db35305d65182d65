"""This daemon among its replicas: its heartbeat, how many others it counts, and its part of
every rate limit (runtime/sharing.py)."""

from __future__ import annotations

import time
from datetime import timedelta

from rotator import log
from rotator.runtime import ratelimit
from rotator.runtime.sharing import Sharing
from rotator.state.db import StateDB
from rotator.state.identity import process_identity

_log = log.get(__name__)

IDLE_AFTER = 10.0
"""Seconds without wanting to send under a rate limit after which a replica counts as idle."""
HEARTBEAT_TTL = timedelta(seconds=30)
"""A replica not heard of for this long stops counting (a heartbeat goes with each probe)."""


class Replicas:
    def __init__(self) -> None:
        self.identity = process_identity()
        self.alive, self.busy = 1, 0
        self.sharing = Sharing()

    def beat(self, db: StateDB) -> None:
        """Say this replica is alive and whether it is busy, count the others, and keep to the part
        of every rate limit that leaves them theirs."""
        began, busy = time.monotonic(), ratelimit.wanted_within(IDLE_AFTER)
        alive, working = db.heartbeat(self.identity, HEARTBEAT_TTL, idle=not busy)
        if (alive, working) != (self.alive, self.busy):
            _log.info("replicas.counted", replicas=alive, busy=working, this_one="busy" if busy else "idle")
        self.alive, self.busy = alive, working
        self.sharing.seen(alive=alive, busy=working, me_busy=busy, at=began)

    def join(self) -> None:
        """From now on this process keeps to its part of every rate limit."""
        ratelimit.share_with(self.sharing)

    def leave(self, db: StateDB) -> None:
        """This replica stops: the others count without it, and take its part, at once."""
        ratelimit.share_with(None)
        db.farewell(self.identity)
