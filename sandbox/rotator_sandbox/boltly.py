"""Boltly (providers.md, seed 004): API keys in `X-API-Key`, created with a user JWT.

Login gives an access token (HS256, 15 minutes by default) and a refresh token (7 days); a refresh
returns a new pair and kills the refresh token it was given. Revoked keys keep working for
`revocation_delay` seconds (the vendor's key cache). Users are added through `/_sandbox/users`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from rotator_sandbox.base import Key, Sandbox, iso, random_text

PATH = "/v1/developer-access/api-keys"
SCOPES = {
    "contacts:read",
    "contacts:write",
    "contacts:manage",
    "inbox:read",
    "inbox:write",
    "broadcasts:read",
    "broadcasts:create",
    "broadcasts:send",
    "templates:read",
    "templates:create",
    "templates:manage",
    "tokens:read",
    "tokens:create",
}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class User:
    email: str
    password: str
    account: str


class BoltlySandbox(Sandbox):
    name = "boltly"
    default_scopes = ["contacts:read", "inbox:read"]

    def __init__(self) -> None:
        super().__init__()
        self.signing_key = secrets.token_bytes(32)
        self.users: dict[str, User] = {}
        self.refresh_tokens: dict[str, tuple[str, float]] = {}  # token → (email, expires)
        self.access_ttl = 900.0
        self.refresh_ttl = 7 * 86400.0
        self.narrow_scopes = False
        """Issue new keys one scope short of what was asked (a vendor that silently narrows)."""

    def configure(self, body: dict[str, Any]) -> None:
        super().configure(body)
        if "access_ttl" in body:
            self.access_ttl = float(body["access_ttl"])
        if "narrow_scopes" in body:
            self.narrow_scopes = bool(body["narrow_scopes"])

    def new_secret(self) -> str:
        return "sk_live_" + random_text(32)

    def presented(self, request: Request) -> str | None:
        return request.headers.get("x-api-key")

    def error_body(self, status: int, code: str, message: str) -> dict[str, Any]:
        return {"error": {"code": code, "message": message}}

    # JWTs ----------------------------------------------------------------------------------------

    def _jwt(self, user: User) -> str:
        header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        payload = _b64(
            json.dumps({"sub": user.email, "org": user.account, "exp": int(time.time() + self.access_ttl)}).encode()
        )
        signature = hmac.new(self.signing_key, f"{header}.{payload}".encode(), hashlib.sha256).digest()
        return f"{header}.{payload}.{_b64(signature)}"

    def _user_of_jwt(self, request: Request) -> User | None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or token.count(".") != 2:
            return None
        header, payload, signature = token.split(".")
        expected = _b64(hmac.new(self.signing_key, f"{header}.{payload}".encode(), hashlib.sha256).digest())
        if not hmac.compare_digest(expected, signature):
            return None
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        if claims["exp"] < time.time():
            return None
        return self.users.get(claims["sub"])

    def _pair(self, user: User) -> dict[str, Any]:
        refresh = "rt_" + random_text(40)
        with self.lock:
            self.refresh_tokens[refresh] = (user.email, time.time() + self.refresh_ttl)
        return {
            "access_token": self._jwt(user),
            "refresh_token": refresh,
            "token_type": "Bearer",
            "expires_in": int(self.access_ttl),
        }

    async def login(self, request: Request) -> Response:
        body = await request.json()
        user = self.users.get(str(body.get("email")))
        if user is None or not hmac.compare_digest(user.password, str(body.get("password"))):
            return self.deny(401, "Invalid email or password", "invalid_credentials")
        return JSONResponse(self._pair(user))

    async def refresh(self, request: Request) -> Response:
        body = await request.json()
        with self.lock:
            found = self.refresh_tokens.pop(str(body.get("refresh_token")), None)
        if found is None or found[1] < time.time():
            return self.deny(401, "Invalid or expired refresh token", "invalid_refresh_token")
        return JSONResponse(self._pair(self.users[found[0]]))

    # API keys --------------------------------------------------------------------------------------

    def _actor(self, request: Request, scope: str) -> str | Response:
        """The account acting: a user's JWT, or an API key holding `scope`."""
        if request.headers.get("authorization"):
            user = self._user_of_jwt(request)
            return user.account if user else self.deny(401, "Invalid or expired access token")
        key = self.authenticate(request)
        if key is None:
            return self.deny(401, "Invalid or revoked API key", "invalid_api_key")
        if scope not in key.scopes:
            return self.deny(403, f"This key lacks the {scope} scope", "insufficient_scope")
        return key.account

    @staticmethod
    def _item(key: Key) -> dict[str, Any]:
        return {
            "id": key.id,
            "name": key.name,
            "scopes": key.scopes,
            "prefix": key.secret[:12],
            "created_at": iso(key.created_at),
            "last_used_at": iso(key.last_used_at),
            "revoked_at": iso(key.revoked_at),
        }

    async def create(self, request: Request) -> Response:
        account = self._actor(request, "tokens:create")
        if isinstance(account, Response):
            return account
        body = await request.json()
        scopes = body.get("scopes")
        if not isinstance(scopes, list) or not scopes or not set(scopes) <= SCOPES:
            return self.deny(422, "scopes must be a non-empty list of known scopes")
        if self.narrow_scopes and len(scopes) > 1:
            scopes = scopes[:-1]
        key = self.mint(str(body.get("name") or ""), account=account, scopes=scopes)
        return JSONResponse({"data": {**self._item(key), "secret_key": key.secret}}, status_code=201)

    async def list_keys(self, request: Request) -> Response:
        account = self._actor(request, "tokens:read")
        if isinstance(account, Response):
            return account
        with self.lock:
            return JSONResponse({"data": [self._item(k) for k in self.keys.values() if k.account == account]})

    async def delete(self, request: Request) -> Response:
        account = self._actor(request, "tokens:create")
        if isinstance(account, Response):
            return account
        key = self.keys.get(request.path_params["id"])
        if key is None or key.account != account or key.revoked_at is not None:
            return self.deny(404, "API key not found")
        self.revoke(key.id)
        return Response(status_code=204)

    async def add_user(self, request: Request) -> Response:
        body = await request.json()
        user = User(str(body["email"]), str(body["password"]), str(body.get("account") or "acct_main"))
        self.users[user.email] = user
        return JSONResponse({"email": user.email, "account": user.account}, status_code=201)

    async def refresh_count(self, request: Request) -> Response:
        with self.lock:
            return JSONResponse({"live_refresh_tokens": len(self.refresh_tokens)})

    def routes(self) -> list[BaseRoute]:
        return [
            self.route("/v1/auth/login", self.login, "POST"),
            self.route("/v1/auth/refresh", self.refresh, "POST"),
            self.route(PATH, self.create, "POST"),
            self.route(PATH, self.list_keys, "GET"),
            self.route(PATH + "/{id}", self.delete, "DELETE"),
            Route("/_sandbox/users", self.add_user, methods=["POST"]),
            Route("/_sandbox/refresh-tokens", self.refresh_count, methods=["GET"]),
        ]
