"""What every simulator shares: a log of the requests it served, and injected faults.

Faults come two ways: a rate (`{"rate": 0.3, "kinds": ["429", "500", "timeout"]}`) for chaos, and
a queue of one-shot rules (`{"method": "POST", "path": "/v1/...", "kind": "timeout_after"}`) for
tests that need one exact failure. Kinds: any status (`429` with Retry-After, `500`, `404`, …), `timeout`
(hang, do nothing), `timeout_after` (do the work, then hang: the client never hears it happened),
`latency` (answer after `seconds`). Control endpoints live under `/_sandbox/`.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

Handler = Callable[[Request], Awaitable[Response]]


@dataclass
class Rule:
    kind: str
    method: str | None = None
    path: str | None = None
    seconds: float = 0.0
    remaining: int = 1

    def matches(self, request: Request) -> bool:
        return (self.method in (None, request.method)) and (self.path is None or request.url.path.startswith(self.path))


@dataclass
class Faults:
    rate: float = 0.0
    kinds: list[str] = field(default_factory=lambda: ["429", "500", "timeout"])
    latency: float = 0.0
    hang_seconds: float = 30.0
    retry_after: int = 1
    rules: list[Rule] = field(default_factory=list)
    seed: int | None = None
    _random: random.Random = field(default_factory=random.Random)

    def pick(self, request: Request) -> Rule | None:
        for rule in self.rules:
            if rule.remaining > 0 and rule.matches(request):
                rule.remaining -= 1
                return rule
        if self.rate and self._random.random() < self.rate:
            return Rule(kind=self._random.choice(self.kinds))
        return None


class Recorder:
    """Thread-safe request log and fault settings shared by a simulator and its control API."""

    def __init__(self, error_body: Callable[[int, str], Any]) -> None:
        self.lock = threading.Lock()
        self.requests: list[dict[str, Any]] = []
        self.faults = Faults()
        self.error_body = error_body

    def wrap(self, handler: Handler) -> Handler:
        async def wrapped(request: Request) -> Response:
            entry = {
                "method": request.method,
                "path": request.url.path,
                "query": request.url.query,
                "headers": {k.lower(): v for k, v in request.headers.items()},
                "at": time.time(),
            }
            with self.lock:
                self.requests.append(entry)
                rule = self.faults.pick(request)
                latency = self.faults.latency
                hang = self.faults.hang_seconds
            if latency:
                await asyncio.sleep(latency)
            if rule is not None:
                entry["fault"] = rule.kind
                if rule.kind == "latency":
                    await asyncio.sleep(rule.seconds)
                elif rule.kind == "timeout":
                    await asyncio.sleep(rule.seconds or hang)
                    return JSONResponse(self.error_body(504, "gateway timeout"), status_code=504)
                elif rule.kind.isdigit():  # an answer with that status: "429", "500", "404", …
                    status = int(rule.kind)
                    headers = {"Retry-After": str(self.faults.retry_after)} if status == 429 else {}
                    return JSONResponse(self.error_body(status, "injected fault"), status_code=status, headers=headers)
            response = await handler(request)
            entry["status"] = response.status_code
            if rule is not None and rule.kind == "timeout_after":
                await asyncio.sleep(rule.seconds or hang)
            return response

        return wrapped

    async def set_faults(self, request: Request) -> Response:
        body = await request.json()
        with self.lock:
            f = self.faults
            f.rate = float(body.get("rate", f.rate))
            f.kinds = list(body.get("kinds", f.kinds))
            f.latency = float(body.get("latency", f.latency))
            f.hang_seconds = float(body.get("hang_seconds", f.hang_seconds))
            f.retry_after = int(body.get("retry_after", f.retry_after))
            if "seed" in body:
                f._random.seed(body["seed"])
            for raw in body.get("rules", []):
                f.rules.append(
                    Rule(
                        kind=str(raw["kind"]),
                        method=raw.get("method"),
                        path=raw.get("path"),
                        seconds=float(raw.get("seconds", 0)),
                        remaining=int(raw.get("times", 1)),
                    )
                )
            if body.get("clear"):
                self.faults = Faults()
        return JSONResponse({"ok": True})

    async def list_requests(self, request: Request) -> Response:
        with self.lock:
            return JSONResponse({"requests": list(self.requests)})

    def control_routes(self) -> list[Route]:
        return [
            Route("/_sandbox/faults", self.set_faults, methods=["POST"]),
            Route("/_sandbox/requests", self.list_requests, methods=["GET"]),
        ]
