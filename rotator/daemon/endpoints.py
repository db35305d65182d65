"""What the daemon answers over HTTP: /healthz (alive: the loop turns, no step is stuck), /readyz
(the state database answers) and /metrics (streamed), and why it cannot listen where it is told."""

from __future__ import annotations

import errno
import socket
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route


def app(
    *,
    problem: Callable[[], str | None],
    readiness: Callable[[], tuple[bool, str | None]],
    scrape: Callable[[], Iterator[bytes]],
) -> Starlette:
    async def healthz(_: Request) -> Response:
        found = problem()
        if found is None:
            return JSONResponse({"status": "ok"})
        return JSONResponse({"status": "stalled", "reason": found}, status_code=503)

    async def readyz(_: Request) -> Response:
        ready, reason = readiness()
        body: dict[str, Any] = {"ready": ready}
        if reason:
            body["reason"] = reason
        return JSONResponse(body, status_code=200 if ready else 503)

    async def metrics(_: Request) -> Response:
        return StreamingResponse(scrape(), media_type=CONTENT_TYPE_LATEST)

    routes: list[Any] = [Route("/healthz", healthz), Route("/readyz", readyz), Route("/metrics", metrics)]
    return Starlette(routes=routes)


def cannot_listen(exc: OSError) -> str:
    """Why the daemon cannot listen where daemon.listen says, and what to do."""
    fix = "set another daemon.listen (or ROTATOR_DAEMON__LISTEN)"
    if isinstance(exc, socket.gaierror):
        return f"the host name does not resolve ({exc.strerror}); {fix}"
    if exc.errno == errno.EADDRINUSE:
        return f"the address is in use (another `rotator run`?); stop it or {fix}"
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"not an address of this machine; {fix} (0.0.0.0 for every address)"
    if exc.errno == errno.EACCES:
        return f"permission denied (ports below 1024 need privileges); {fix}"
    return f"{exc.strerror or type(exc).__name__}; {fix}"
