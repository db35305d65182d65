"""What every simulator shares: a table of keys, the out-of-band controls, faults and a request log.

Controls (not part of any vendor's API), under `/_sandbox/`:
- `POST /_sandbox/keys {"name", "account", "scopes"}` mints a key — the person in the dashboard;
- `GET /_sandbox/keys` lists keys with their state (never their secrets);
- `POST /_sandbox/keys/{id}/revoke` revokes one — the person again;
- `POST /_sandbox/config {"refuse_new_keys", "revocation_delay", "rate_limit", ...}`;
- `POST /_sandbox/faults`, `GET /_sandbox/requests` (see `faults.py`).
"""

from __future__ import annotations

import abc
import secrets
import string
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from rotator_sandbox.faults import Recorder

ALPHANUMERIC = string.ascii_letters + string.digits


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def random_text(n: int) -> str:
    return "".join(secrets.choice(ALPHANUMERIC) for _ in range(n))


@dataclass
class Key:
    id: str
    name: str
    secret: str = field(repr=False)
    account: str
    scopes: list[str]
    created_at: float
    last_used_at: float | None = None
    revoked_at: float | None = None
    refused: bool = False
    uses: int = 0

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "account": self.account,
            "scopes": self.scopes,
            "created_at": iso(self.created_at),
            "last_used_at": iso(self.last_used_at),
            "revoked_at": iso(self.revoked_at),
            "revoked": self.revoked_at is not None,
            "uses": self.uses,
        }


class Sandbox(abc.ABC):
    name: str
    prefix = ""
    """Path prefix of the documented API in the base URL users configure (e.g. `/v1`)."""
    default_scopes: list[str] = []

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.keys: dict[str, Key] = {}
        self.recorder = Recorder(lambda status, message: self.error_body(status, _code(status), message))
        self.refuse_new_keys = False
        self.revocation_delay = 0.0

    # what each vendor differs in -------------------------------------------------------------

    @abc.abstractmethod
    def new_secret(self) -> str: ...

    @abc.abstractmethod
    def presented(self, request: Request) -> str | None:
        """The key a request presents, the vendor's way (a header)."""

    @abc.abstractmethod
    def error_body(self, status: int, code: str, message: str) -> dict[str, Any]: ...

    @abc.abstractmethod
    def routes(self) -> list[BaseRoute]: ...

    # the model -------------------------------------------------------------------------------

    def mint(self, name: str, *, account: str = "acct_main", scopes: list[str] | None = None) -> Key:
        key = Key(
            id=str(uuid.uuid4()),
            name=name,
            secret=self.new_secret(),
            account=account,
            scopes=list(self.default_scopes if scopes is None else scopes),
            created_at=time.time(),
            refused=self.refuse_new_keys,
        )
        with self.lock:
            self.keys[key.id] = key
        return key

    def live(self, key: Key) -> bool:
        if key.refused:
            return False
        # a revocation takes `revocation_delay` to reach every cache (Boltly)
        return key.revoked_at is None or time.time() < key.revoked_at + self.revocation_delay

    def find(self, secret: str | None) -> Key | None:
        if not secret:
            return None
        with self.lock:
            for key in self.keys.values():
                if secrets.compare_digest(key.secret, secret):
                    return key
        return None

    def authenticate(self, request: Request) -> Key | None:
        key = self.find(self.presented(request))
        if key is None or not self.live(key):
            return None
        with self.lock:
            key.last_used_at = time.time()
            key.uses += 1
        return key

    def revoke(self, key_id: str) -> Key | None:
        with self.lock:
            key = self.keys.get(key_id)
            if key is None or key.revoked_at is not None:
                return None
            key.revoked_at = time.time()
            return key

    def deny(
        self, status: int, message: str, code: str | None = None, headers: dict[str, str] | None = None
    ) -> Response:
        return JSONResponse(
            self.error_body(status, code or _code(status), message), status_code=status, headers=headers
        )

    # the controls ------------------------------------------------------------------------------

    async def _mint(self, request: Request) -> Response:
        body = await request.json()
        key = self.mint(
            str(body.get("name") or "sandbox-key"),
            account=str(body.get("account") or "acct_main"),
            scopes=body.get("scopes"),
        )
        return JSONResponse({**key.public(), "secret": key.secret}, status_code=201)

    async def _list(self, request: Request) -> Response:
        with self.lock:
            return JSONResponse({"keys": [k.public() for k in self.keys.values()]})

    async def _revoke(self, request: Request) -> Response:
        key = self.revoke(request.path_params["id"])
        return JSONResponse({"revoked": key is not None})

    async def _config(self, request: Request) -> Response:
        body = await request.json()
        self.configure(body)
        return JSONResponse({"ok": True})

    def configure(self, body: dict[str, Any]) -> None:
        if "refuse_new_keys" in body:
            self.refuse_new_keys = bool(body["refuse_new_keys"])
        if "revocation_delay" in body:
            self.revocation_delay = float(body["revocation_delay"])

    def app(self) -> Starlette:
        controls: list[BaseRoute] = [
            Route("/_sandbox/keys", self._mint, methods=["POST"]),
            Route("/_sandbox/keys", self._list, methods=["GET"]),
            Route("/_sandbox/keys/{id}/revoke", self._revoke, methods=["POST"]),
            Route("/_sandbox/config", self._config, methods=["POST"]),
            *self.recorder.control_routes(),
        ]
        return Starlette(routes=[*self.routes(), *controls])

    def route(self, path: str, handler: Any, method: str) -> Route:
        return Route(path, self.recorder.wrap(handler), methods=[method])


def _code(status: int) -> str:
    return {
        400: "bad_request",
        401: "unauthorized",
        403: "forbidden",
        404: "not_found",
        422: "validation_error",
        429: "rate_limited",
    }.get(status, "server_error" if status >= 500 else "error")
