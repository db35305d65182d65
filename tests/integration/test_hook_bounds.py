"""A consumer hook costs rotator at most `hook_timeout` and 64 KiB, whatever the consumer does: a
real HTTP server that drips its answer or sends megabytes, and a command that leaves a child
holding its output."""

from __future__ import annotations

import asyncio
import time
import tracemalloc
from collections.abc import AsyncIterator, Iterator

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from rotator.engine.gate_signals import _call
from rotator.runtime.background_http import Served, serve_app
from rotator.settings.models import CommandHook, HooksSettings
from rotator.settings.policies import Hook, HttpHook

TIMEOUT = 1.0
DRIP_FOR = 60.0
"""Far longer than any slow machine could stretch a one-second deadline: a call that lasted this
long was held by the consumer, not by the machine."""


async def _drip(request: Request) -> Response:
    async def body() -> AsyncIterator[bytes]:
        for _ in range(int(DRIP_FOR * 4)):
            yield b"s"
            await asyncio.sleep(0.25)

    return StreamingResponse(body(), media_type="text/plain")


async def _huge(request: Request) -> Response:
    async def body() -> AsyncIterator[bytes]:
        for _ in range(160):
            yield b"x" * 65536  # 10 MiB in all

    return StreamingResponse(body(), media_type="text/plain")


@pytest.fixture(scope="module")
def consumer() -> Iterator[Served]:
    served = serve_app(
        Starlette(routes=[Route("/drip", _drip), Route("/huge", _huge)]), host="127.0.0.1", port=0, name="bad-consumer"
    )
    yield served
    served.stop()


def _hooks(served: Served) -> HooksSettings:
    return HooksSettings(allowed_hosts=[f"127.0.0.1:{served.port}"])


def test_a_dripping_answer_ends_at_hook_timeout(consumer: Served) -> None:
    started = time.monotonic()
    ok, answer = _call(Hook(http=HttpHook(url=f"{consumer.url}/drip")), _hooks(consumer), TIMEOUT, {})
    took = time.monotonic() - started
    assert not ok and "hook_timeout" in answer
    assert took < DRIP_FOR / 4, f"the hook held rotator for {took:.1f}s with hook_timeout {TIMEOUT}s"


def test_a_huge_answer_is_cut_off_with_bounded_memory(consumer: Served) -> None:
    tracemalloc.start()
    try:
        ok, answer = _call(Hook(http=HttpHook(url=f"{consumer.url}/huge")), _hooks(consumer), 30.0, {})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert not ok and "larger than 64 KiB" in answer
    assert peak < 2 * 1024 * 1024, f"reading the answer took {peak / 1e6:.1f} MB"


def test_a_command_whose_child_holds_its_output_ends_at_hook_timeout() -> None:
    hooks = HooksSettings(
        commands={"stuck": CommandHook(command=["/bin/sh", "-c", f"sleep {DRIP_FOR:g} & sleep {DRIP_FOR:g}"])}
    )
    started = time.monotonic()
    ok, answer = _call(Hook(command="stuck"), hooks, TIMEOUT, {})
    took = time.monotonic() - started
    assert not ok and "hook_timeout" in answer
    assert took < DRIP_FOR / 4, f"the command held rotator for {took:.1f}s with hook_timeout {TIMEOUT}s"


def test_a_command_that_floods_its_output_is_cut_off() -> None:
    hooks = HooksSettings(commands={"flood": CommandHook(command=["/usr/bin/head", "-c", "10000000", "/dev/zero"])})
    ok, answer = _call(Hook(command="flood"), hooks, 30.0, {})
    assert not ok and "larger than 64 KiB" in answer
