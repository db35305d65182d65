"""Notifications survive a crash: an event committed with its state change is delivered by the next
run, with an event id receivers can deduplicate on and an HMAC signature they can verify."""

from __future__ import annotations

import hashlib
import hmac
import json
import signal
import socket
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from rotator.background_http import serve_app
from tests.support.world import World

pytestmark = pytest.mark.e2e
SECRET = "a-signing-secret-for-tests"


def test_an_event_the_process_died_before_delivering_arrives_after_restart(world: World) -> None:
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
