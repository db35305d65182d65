"""One consumer hook call, bounded on every axis: one deadline for all of it (connect, send, the
whole answer; a command's whole run), and an answer capped at ANSWER_LIMIT. A consumer that drips
its answer a byte at a time, or sends megabytes, costs rotator `hook_timeout` and 64 KiB at most."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

ANSWER_LIMIT = 64 * 1024
"""Plenty for a fingerprint or a JSON status."""


class TooLarge(Exception):
    pass


async def _exchange(method: str, url: str, headers: dict[str, str], body: Any, timeout: float) -> tuple[bool, str]:
    async with httpx.AsyncClient(follow_redirects=False, timeout=timeout) as client:
        # identity: the cap counts what travels, and a compressed answer cannot expand past it
        request = client.build_request(method, url, headers={**headers, "Accept-Encoding": "identity"}, json=body)
        response = await client.send(request, stream=True)
        try:
            answer = bytearray()
            async for chunk in response.aiter_raw():
                answer += chunk
                if len(answer) > ANSWER_LIMIT:
                    raise TooLarge
            return response.is_success, answer.decode("utf-8", errors="replace")
        finally:
            await response.aclose()


def http(method: str, url: str, *, headers: dict[str, str], body: Any, timeout: float) -> tuple[bool, str]:
    """(succeeded, its answer), within `timeout` seconds in all."""
    loop = asyncio.new_event_loop()
    # a name lookup runs in a thread the deadline cannot stop: the loop does not wait for it at
    # the end (asyncio.run would, for as long as a slow resolver takes)
    resolver = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hook-dns")
    loop.set_default_executor(resolver)
    try:
        return loop.run_until_complete(asyncio.wait_for(_exchange(method, url, headers, body, timeout), timeout))
    except TimeoutError:
        return False, f"no whole answer within hook_timeout ({timeout:g}s)"
    except TooLarge:
        return False, f"answer larger than {ANSWER_LIMIT // 1024} KiB"
    except (httpx.HTTPError, httpx.InvalidURL, OSError, ValueError) as exc:
        return False, type(exc).__name__
    finally:
        resolver.shutdown(wait=False, cancel_futures=True)
        loop.close()


def command(argv: list[str], *, env: dict[str, str], timeout: float) -> tuple[bool, str]:
    """Run an operator-defined command in a session of its own, its output in a file (not a pipe
    a child left behind could hold open): at the deadline the whole session is killed."""
    with tempfile.TemporaryFile() as out:
        try:
            process = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.DEVNULL, env=env, start_new_session=True
            )
        except OSError as exc:
            return False, type(exc).__name__
        try:
            code = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            return False, f"still running after hook_timeout ({timeout:g}s)"
        out.seek(0)
        answer = out.read(ANSWER_LIMIT + 1)
    if len(answer) > ANSWER_LIMIT:
        return False, f"answer larger than {ANSWER_LIMIT // 1024} KiB"
    return code == 0, answer.decode("utf-8", errors="replace")
