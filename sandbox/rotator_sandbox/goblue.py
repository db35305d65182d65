"""GoBlue (providers.md, seed 002): Bearer keys, per-key hourly limits with burst, `/v1/forms`.

`/v1/messages/{api-key}` exists as the vendor documents it (a key in a URL); rotator never calls it,
and the tests check this simulator's request log for any key in a path or query.
"""

from __future__ import annotations

import math
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from rotator_sandbox.base import Key, Sandbox, random_text
from rotator_sandbox.ratelimit import Window


class GoBlueSandbox(Sandbox):
    name = "goblue"
    prefix = "/v1"

    def __init__(self) -> None:
        super().__init__()
        self.hourly = Window(limit=1000, seconds=3600)
        self.burst = Window(limit=100, seconds=60)

    def configure(self, body: dict[str, Any]) -> None:
        super().configure(body)
        if "rate_limit" in body:
            self.hourly = Window(limit=int(body["rate_limit"]), seconds=3600)
        if "burst_limit" in body:
            self.burst = Window(limit=int(body["burst_limit"]), seconds=60)

    def new_secret(self) -> str:
        return "goblue_sk_" + random_text(40)

    def presented(self, request: Request) -> str | None:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        return value if scheme.lower() == "bearer" else None

    def error_body(self, status: int, code: str, message: str) -> dict[str, Any]:
        codes = {401: "AUTHENTICATION_ERROR", 403: "PERMISSION_ERROR", 429: "RATE_LIMIT_EXCEEDED"}
        return {"status": "error", "message": message, "code": codes.get(status, code.upper()), "details": {}}

    def _limited(self, key: Key) -> Response | dict[str, str]:
        ok_hour, left_hour, reset = self.hourly.hit(key.id)
        ok_burst, left_burst, burst_reset = self.burst.hit(key.id)
        headers = {
            "X-RateLimit-Limit": str(self.hourly.limit),
            "X-RateLimit-Remaining": str(left_hour),
            "X-RateLimit-Reset": str(int(reset)),
            "X-RateLimit-Burst-Limit": str(self.burst.limit),
            "X-RateLimit-Burst-Remaining": str(left_burst),
        }
        if not (ok_hour and ok_burst):
            wait = (reset if not ok_hour else burst_reset) - time.time()
            return self.deny(
                429, "Rate limit exceeded", headers={**headers, "Retry-After": str(max(1, math.ceil(wait)))}
            )
        return headers

    def _unauthorized(self, request: Request) -> Response:
        shown = (self.presented(request) or "")[:17]
        body = {
            "status": "error",
            "message": "Invalid API key",
            "code": "AUTHENTICATION_ERROR",
            "details": {"provided": f"{shown}...", "expected": "Valid GoBlue API key"},
        }
        return JSONResponse(body, status_code=401)

    async def forms(self, request: Request) -> Response:
        key = self.authenticate(request)
        if key is None:
            return self._unauthorized(request)
        headers = self._limited(key)
        if isinstance(headers, Response):
            return headers
        forms = [{"id": f"form_{key.account}_{i}", "name": f"Form {i}"} for i in (1, 2)]
        return JSONResponse({"forms": forms}, headers=headers)

    async def messages(self, request: Request) -> Response:
        key = self.find(request.path_params["key"])
        if key is None or not self.live(key):
            return JSONResponse(
                {"status": "error", "message": "Invalid API key", "code": "AUTHENTICATION_ERROR"}, status_code=401
            )
        headers = self._limited(key)
        if isinstance(headers, Response):
            return headers
        return JSONResponse({"messages": []}, headers=headers)

    def routes(self) -> list[BaseRoute]:
        return [self.route("/v1/forms", self.forms, "GET"), self.route("/v1/messages/{key}", self.messages, "GET")]
