"""Notifications survive a crash: an event committed with its state change is delivered by the next
run, with an event id receivers can deduplicate on and an HMAC signature they can verify."""

from __future__ import annotations

import hashlib
import hmac
import json
import signal
import socket
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import update
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from rotator.runtime.background_http import serve_app
from rotator.state.schema import OutboxEntry
from tests.support.world import World

pytestmark = pytest.mark.e2e
SECRET = "a-signing-secret-for-tests"


def test_an_event_the_process_died_before_delivering_arrives_after_restart(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    world.config.write_text(
        world.config.read_text()
        + f"notifications:\n  - {{url: 'http://127.0.0.1:{port}/hook', signing_secret: {{env: RT_SIGN}}}}\n"
    )
    env = {"RT_SIGN": SECRET}
    # the receiver is down, then the process is killed: nothing was delivered yet
    crashed = world.cli("rotate", world.name, env={**env, "ROTATOR_FAILPOINTS": "after:probed"})
    assert crashed.returncode == -signal.SIGKILL, crashed.stdout + crashed.stderr

    received: list[tuple[dict[str, str], bytes]] = []

    async def hook(request: Request) -> Response:
        received.append(({k.lower(): v for k, v in request.headers.items()}, await request.body()))
        return JSONResponse({})

    served = serve_app(
        Starlette(routes=[Route("/hook", hook, methods=["POST"])]), host="127.0.0.1", port=port, name="r"
    )
    try:
        resumed = world.cli("rotate", world.name, env=env)
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        # The killed run may have tried (and failed) to deliver a few times, each failure putting the
        # next try further off (1 s, 2 s, …): how many depends on how fast the machine ran, and a
        # command delivers only what is due when it exits. So time passes here by the database (every
        # entry made due), and one more pass delivers: what is asserted is that nothing was lost.
        monkeypatch.setenv("RT_SIGN", SECRET)
        app = world.app()
        try:
            with app.db.session() as s:
                s.execute(
                    update(OutboxEntry)
                    .where(OutboxEntry.delivered_at.is_(None), OutboxEntry.gave_up_at.is_(None))
                    .values(next_attempt_at=app.db.clock() - timedelta(seconds=1))
                )
            app.notifier.flush()
        finally:
            app.close()
    finally:
        served.stop()
    bodies: list[dict[str, Any]] = [json.loads(body) for _, body in received]
    kinds = [b["event"] for b in bodies]
    assert "started" in kinds and "completed" in kinds  # `started` was committed by the killed run
    started = next(b for b in bodies if b["event"] == "started")
    assert started["secret"] == world.name and started["event_id"]
    for headers, body in received:
        stamp, _, digest = headers["x-rotator-signature"].partition(",sha256=")
        expected = hmac.new(SECRET.encode(), stamp.removeprefix("t=").encode() + b"." + body, hashlib.sha256)
        assert hmac.compare_digest(digest, expected.hexdigest())
        assert headers["x-rotator-event-id"] == json.loads(body)["event_id"]
    assert world.first["token"] not in repr(received) and world.current()["api_key"] not in repr(received)
    pending, given_up = world.app().db.outbox_counts()
    assert (pending, given_up) == (0, 0)
