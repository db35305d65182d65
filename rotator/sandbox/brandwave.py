"""A Brandwave simulator following providers.md: personal access tokens behind Bearer auth.

Every endpoint needs a live token; unknown or revoked tokens get 401. The list shows `lastUsedAt`,
updated whenever a token authenticates. `/_sandbox/tokens` plays the account owner: it mints a
token out of band (the first key of a demo) and shows which tokens are live.
"""

from __future__ import annotations

import secrets
import string
import threading
import uuid
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from rotator.sandbox.faults import Recorder

_ALPHABET = string.ascii_letters + string.digits


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _error(status: int, message: str) -> dict[str, Any]:
    codes = {401: "unauthorized", 404: "not_found", 422: "validation_error", 429: "rate_limited"}
    return {"error": {"code": codes.get(status, "server_error" if status >= 500 else "error"), "message": message}}


class BrandwaveSandbox:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.tokens: dict[str, dict[str, Any]] = {}
        self.recorder = Recorder(_error)
        self.refuse_new_tokens = False

    # the model -----------------------------------------------------------------------------

    def mint(self, name: str) -> dict[str, Any]:
        token: dict[str, Any] = {
            "id": str(uuid.uuid4()),
            "name": name,
            "createdAt": _now(),
            "expiresAt": None,
            "lastUsedAt": None,
            "token": "bwpat_" + "".join(secrets.choice(_ALPHABET) for _ in range(40)),
            "revoked": False,
            "refused": self.refuse_new_tokens,
        }
        with self.lock:
            self.tokens[token["id"]] = token
        return token

    def _authenticate(self, request: Request) -> dict[str, Any] | None:
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value:
            return None
        with self.lock:
            for token in self.tokens.values():
                if token["token"] == value and not token["revoked"] and not token["refused"]:
                    token["lastUsedAt"] = _now()
                    return token
        return None

    @staticmethod
    def _public(token: dict[str, Any]) -> dict[str, Any]:
        return {k: token[k] for k in ("id", "name", "createdAt", "expiresAt", "lastUsedAt")}

    # the documented API ----------------------------------------------------------------------

    async def create(self, request: Request) -> Response:
        if self._authenticate(request) is None:
            return JSONResponse(_error(401, "Invalid or missing token"), status_code=401)
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("name"), str) or not body["name"]:
            return JSONResponse(_error(422, "name is required"), status_code=422)
        token = self.mint(body["name"])
        token["expiresAt"] = body.get("expiresAt")
        return JSONResponse({"data": {**self._public(token), "token": token["token"]}}, status_code=201)

    async def list(self, request: Request) -> Response:
        if self._authenticate(request) is None:
            return JSONResponse(_error(401, "Invalid or missing token"), status_code=401)
        page = max(1, int(request.query_params.get("page", "1")))
        size = max(1, min(100, int(request.query_params.get("pageSize", "20"))))
        with self.lock:
            live = [self._public(t) for t in self.tokens.values() if not t["revoked"]]
        items = live[(page - 1) * size : page * size]
        return JSONResponse({"items": items, "totalCount": len(live), "facets": {}})

    async def revoke(self, request: Request) -> Response:
        if self._authenticate(request) is None:
            return JSONResponse(_error(401, "Invalid or missing token"), status_code=401)
        token_id = request.path_params["id"]
        with self.lock:
            token = self.tokens.get(token_id)
            if token is None or token["revoked"]:
                return JSONResponse(_error(404, "Token not found"), status_code=404)
            token["revoked"] = True
        return JSONResponse({"data": {**self._public(token), "revoked": True}})

    # the sandbox's own controls ------------------------------------------------------------------

    async def control_mint(self, request: Request) -> Response:
        body = await request.json()
        token = self.mint(str(body.get("name") or "sandbox-seed"))
        return JSONResponse({**self._public(token), "token": token["token"]}, status_code=201)

    async def control_tokens(self, request: Request) -> Response:
        with self.lock:
            return JSONResponse(
                {"tokens": [{**self._public(t), "revoked": t["revoked"]} for t in self.tokens.values()]}
            )

    async def control_refuse(self, request: Request) -> Response:
        body = await request.json()
        self.refuse_new_tokens = bool(body.get("refuse_new_tokens"))
        return JSONResponse({"ok": True})

    def app(self) -> Starlette:
        wrap = self.recorder.wrap
        return Starlette(
            routes=[
                Route("/v1/personal-access-tokens", wrap(self.create), methods=["POST"]),
                Route("/v1/personal-access-tokens", wrap(self.list), methods=["GET"]),
                Route("/v1/personal-access-tokens/{id}", wrap(self.revoke), methods=["DELETE"]),
                Route("/_sandbox/tokens", self.control_mint, methods=["POST"]),
                Route("/_sandbox/tokens", self.control_tokens, methods=["GET"]),
                Route("/_sandbox/refuse", self.control_refuse, methods=["POST"]),
                *self.recorder.control_routes(),
            ]
        )
