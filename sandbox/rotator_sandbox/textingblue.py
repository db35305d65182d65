"""Texting Blue (providers.md, seed 001): `x-api-key`, permissions per key, 401 vs 403, per-minute limits."""

from __future__ import annotations

import math
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from rotator_sandbox.base import Key, Sandbox, random_text
from rotator_sandbox.ratelimit import Window


class TextingBlueSandbox(Sandbox):
    name = "texting-blue"
    prefix = "/v1"
    default_scopes = ["messages:send", "messages:read", "team:read", "numbers:read"]

    def __init__(self) -> None:
        super().__init__()
        self.window = Window(limit=600, seconds=60)

    def configure(self, body: dict[str, Any]) -> None:
        super().configure(body)
        if "rate_limit" in body:
            self.window = Window(limit=int(body["rate_limit"]), seconds=60)

    def new_secret(self) -> str:
        return "tb_live_" + random_text(32)

    def presented(self, request: Request) -> str | None:
        return request.headers.get("x-api-key")

    def error_body(self, status: int, code: str, message: str) -> dict[str, Any]:
        return {"error": {"code": code, "message": message}}

    def _guard(self, request: Request, permission: str) -> Key | Response:
        key = self.authenticate(request)
        if key is None:
            return self.deny(401, "Missing or invalid API key")
        allowed, _, reset = self.window.hit(key.id)
        if not allowed:
            wait = str(max(1, math.ceil(reset - time.time())))
            return self.deny(429, "Rate limit exceeded", headers={"Retry-After": wait, "x-ratelimit-remaining": "0"})
        if permission not in key.scopes and "*" not in key.scopes:
            return self.deny(403, f"This key lacks the {permission} permission")
        return key

    async def team(self, request: Request) -> Response:
        key = self._guard(request, "team:read")
        if isinstance(key, Response):
            return key
        return JSONResponse(
            {"id": f"team_{key.account}", "name": f"Team {key.account}", "plan": "pro"},
            headers={"x-ratelimit-remaining": str(self.window.remaining(key.id))},
        )

    async def numbers(self, request: Request) -> Response:
        key = self._guard(request, "numbers:read")
        if isinstance(key, Response):
            return key
        return JSONResponse(
            {"numbers": [{"number": "+14155559876"}]},
            headers={"x-ratelimit-remaining": str(self.window.remaining(key.id))},
        )

    def routes(self) -> list[BaseRoute]:
        return [self.route("/v1/team", self.team, "GET"), self.route("/v1/numbers", self.numbers, "GET")]
