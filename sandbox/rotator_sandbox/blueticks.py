"""Blueticks (providers.md, seed 000): dashboard-made keys, Bearer auth, `/v1/ping` names the account."""

from __future__ import annotations

import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from rotator_sandbox.base import Sandbox, random_text


class BlueticksSandbox(Sandbox):
    name = "blueticks"

    def new_secret(self) -> str:
        return "bt_live_" + random_text(32)

    def presented(self, request: Request) -> str | None:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        return value if scheme.lower() == "bearer" else None

    def error_body(self, status: int, code: str, message: str) -> dict[str, Any]:
        if status == 401:
            code = "authentication_required"
        return {
            "success": False,
            "error": {"code": code, "message": message, "request_id": f"req_{uuid.uuid4().hex[:12]}", "details": []},
        }

    async def ping(self, request: Request) -> Response:
        key = self.authenticate(request)
        if key is None:
            return self.deny(401, "A valid API key is required")
        return JSONResponse(
            {
                "success": True,
                "data": {
                    "api": "ok",
                    "account_id": key.account,
                    "whatsapp_connections": [{"id": f"conn_{key.account}", "type": "gateway", "connected": True}],
                    "message": "pong",
                },
            }
        )

    async def account(self, request: Request) -> Response:
        key = self.authenticate(request)
        if key is None:
            return self.deny(401, "A valid API key is required")
        return JSONResponse({"success": True, "data": {"id": key.account, "name": f"Workspace {key.account}"}})

    def routes(self) -> list[BaseRoute]:
        return [self.route("/v1/ping", self.ping, "GET"), self.route("/v1/account", self.account, "GET")]
