"""Brandwave (providers.md, seed 003): personal access tokens behind Bearer auth.

Every endpoint needs a live token; unknown or revoked tokens get 401. A token sees and manages the
tokens of its own account (user) only. The list is paged
(`page`, `pageSize`) and shows `lastUsedAt`, updated whenever a token authenticates.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from rotator_sandbox.base import Key, Sandbox, iso, random_text

PATH = "/v1/personal-access-tokens"


class BrandwaveSandbox(Sandbox):
    name = "brandwave"

    def new_secret(self) -> str:
        return "bwpat_" + random_text(40)

    def presented(self, request: Request) -> str | None:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        return value if scheme.lower() == "bearer" else None

    def error_body(self, status: int, code: str, message: str) -> dict[str, Any]:
        return {"error": {"code": code, "message": message}}

    @staticmethod
    def _item(key: Key) -> dict[str, Any]:
        return {
            "id": key.id,
            "name": key.name,
            "createdAt": iso(key.created_at),
            "expiresAt": None,
            "lastUsedAt": iso(key.last_used_at),
        }

    async def create(self, request: Request) -> Response:
        creator = self.authenticate(request)
        if creator is None:
            return self.deny(401, "Invalid or missing token")
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("name"), str) or not body["name"]:
            return self.deny(422, "name is required")
        key = self.mint(body["name"], account=creator.account)
        return JSONResponse({"data": {**self._item(key), "token": key.secret}}, status_code=201)

    async def list_keys(self, request: Request) -> Response:
        user = self.authenticate(request)
        if user is None:
            return self.deny(401, "Invalid or missing token")
        page = max(1, int(request.query_params.get("page", "1")))
        size = max(1, min(100, int(request.query_params.get("pageSize", "20"))))
        with self.lock:
            live = [self._item(k) for k in self.keys.values() if k.revoked_at is None and k.account == user.account]
        return JSONResponse({"items": live[(page - 1) * size : page * size], "totalCount": len(live), "facets": {}})

    async def delete(self, request: Request) -> Response:
        user = self.authenticate(request)
        if user is None:
            return self.deny(401, "Invalid or missing token")
        target = self.keys.get(request.path_params["id"])
        key = self.revoke(target.id) if target is not None and target.account == user.account else None
        if key is None:
            return self.deny(404, "Token not found")
        return JSONResponse({"data": {**self._item(key), "revoked": True}})

    def routes(self) -> list[BaseRoute]:
        return [
            self.route(PATH, self.create, "POST"),
            self.route(PATH, self.list_keys, "GET"),
            self.route(PATH + "/{id}", self.delete, "DELETE"),
        ]
