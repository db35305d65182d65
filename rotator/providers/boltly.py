"""Boltly (providers.md, seed 004): API keys made with a user's JWT; the new key gets the old one's scopes.

The refresh token is itself a rotating secret: every refresh returns a new one and kills the old.
`BoltlySession` saves each new refresh token (a `TokenKeeper`: a file, written atomically, fsync'd,
mode 0600, or a secret in a store, replaced by compare-and-set) before anything else happens, and
refreshes one process at a time (the caller's `serialised`, a lock every replica and command shares),
reading the newest token inside the lock, so two processes never spend the same token. If a crash
still loses it, the next run logs in again with the password, or a person runs `rotator login INSTANCE`.
Assumptions beyond providers.md: login/refresh answer `{"access_token", "refresh_token"}` (also
accepted under `data`, or camelCase); the create answer carries `id` and `secret_key` (top level or
under `data`); the list is `{"data": [...]}` with `id`, `name`, `scopes`, `revoked_at`; an API key
may call the list (needs `tokens:read`, else 403 — which still proves it authenticates).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import SecretStr, model_validator

from rotator.config_parts import CredentialSource, HttpUrl, ProviderSettings, StoreRefPart
from rotator.credentials import read_credential
from rotator.errors import (
    CreateOutcomeUnknown,
    KeyNotFound,
    KeyNotProven,
    KeyRefused,
    PermissionDenied,
    RotationError,
    StoreConflict,
)
from rotator.keys import secret
from rotator.providers.base import ApiProvider, CreatedKey, KeyInfo, ProbeResult
from rotator.providers.http import HttpCore, parse_time, require
from rotator.registry import Context, ProviderType
from rotator.runtime import failpoints
from rotator.stores.base import Store, StoredValue
from rotator.stores.refs import StoreRef

PATH = "/v1/developer-access/api-keys"
MIN_PREFIX = len("sk_live_") + 4
SPENDING_TIMEOUT = 30.0
"""Seconds to wait for a login's or refresh's answer, however short the instance's timeout."""
"""A listed prefix shorter than the vendor's fixed part plus four characters cannot tell keys apart."""


def write_private(path: Path, text: str) -> None:
    """Replace `path` with `text` so that a crash leaves either the old or the new content, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, text.encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        # a half-written copy of a live refresh token must not stay behind
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _field(body: Any, *names: str) -> str | None:
    for source in (body, body.get("data") if isinstance(body, dict) else None):
        if isinstance(source, dict):
            for name in names:
                if isinstance(source.get(name), str) and source[name]:
                    return str(source[name])
    return None


class TokenKeeper(Protocol):
    """Where the refresh token lives between refreshes."""

    where: str
    """Named in messages: a path, or `store:location`."""

    def load(self) -> SecretStr | None:
        """The newest saved token, or None when there is none."""

    def save(self, token: SecretStr) -> None:
        """Replace the token `load` returned last (only that one: a store refuses otherwise)."""


class FileKeeper:
    """A file of its own on this host (the default): replicas on other hosts cannot share it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.where = str(path)

    def load(self) -> SecretStr | None:
        try:
            text = self.path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        return secret(text) if text else None

    def save(self, token: SecretStr) -> None:
        write_private(self.path, token.get_secret_value() + "\n")


class StoreKeeper:
    """A secret in a store (AWS Secrets Manager or Vault) that every replica reaches. A new token is
    staged and made current only if the version read before the refresh is current still: the same
    compare-and-set a rotation's promote uses, so a writer that lost the race cannot overwrite."""

    def __init__(self, store: Store, location: str, *, where: str) -> None:
        self._store = store
        self._location = location
        self._version: str | None = None
        self.where = where

    def load(self) -> SecretStr | None:
        current = self._store.read_current(location=self._location)
        if current is None:
            raise RotationError(
                f"boltly: the refresh token's secret {self.where} does not exist or has no value; "
                "create it (any value) and run `rotator login <instance>`"
            )
        self._version = current.version_id
        return current.value.api_key

    def save(self, token: SecretStr) -> None:
        if self._version is None:
            self.load()
        assert self._version is not None
        version = str(uuid.uuid4())
        value = StoredValue.new(api_key=token, key_id=None, provider="boltly-refresh-token", rotation_id=version)
        self._store.stage(location=self._location, token=version, value=value, first=True)
        try:
            self._store.promote(location=self._location, token=version, expected_current=self._version)
        except StoreConflict as exc:
            raise RotationError(
                f"boltly: the refresh token in {self.where} was replaced by another process during this "
                f"refresh ({exc}); the next attempt reads the newest"
            ) from None
        self._version = version


class BoltlySession:
    """A user's JWT for Boltly, from the saved refresh token, or from a login."""

    def __init__(
        self,
        *,
        http: HttpCore,
        email: str,
        password: Callable[[], SecretStr] | None,
        keeper: TokenKeeper,
        serialised: Callable[[], AbstractContextManager[object]] = contextlib.nullcontext,
    ) -> None:
        self._http = http
        self.email = email
        self._password = password
        self.keeper = keeper
        self._serialised = serialised
        self._access: SecretStr | None = None
        self._expires = 0.0
        self._lock = threading.Lock()

    def access_token(self) -> SecretStr:
        with self._lock:
            if self._access is None or time.time() >= self._expires - 30:
                with self._serialised():
                    self._renew()
            assert self._access is not None
            return self._access

    def invalidate(self) -> None:
        self._access = None

    def _renew(self) -> None:
        saved = self.keeper.load()  # inside the lock: the newest, whoever refreshed last
        # A refresh whose answer was lost may not have reached Boltly: the same token is tried
        # once more (a spent one is refused, and a login below replaces it).
        for last in (False, True):
            if saved is None:
                break
            try:
                body = self._http.request(
                    "POST",
                    "/v1/auth/refresh",
                    headers={},
                    json={"refresh_token": saved.get_secret_value()},
                    idempotent=False,
                    timeout=self._spending_timeout(),
                ).json()
            except KeyRefused:
                break
            except CreateOutcomeUnknown:
                if last:
                    break
                continue
            self._accept(body, "refresh")
            return
        self._login(None)

    def _spending_timeout(self) -> float:
        """Login and refresh answers carry the only copy of the next refresh token: waiting long
        for them costs seconds, giving up on one that arrives late costs the token family."""
        return max(self._http.timeout, SPENDING_TIMEOUT)

    def login(self, password: SecretStr | None = None) -> None:
        """Log in with the password; raise RotationError saying how to recover when there is none."""
        with self._lock, self._serialised():
            self.keeper.load()  # a store's keeper replaces only the version it read
            self._login(password)

    def _login(self, password: SecretStr | None) -> None:
        if password is None and self._password is None:
            raise RotationError(
                f"boltly: no usable refresh token in {self.keeper.where} and no password configured; "
                "run `rotator login <instance>` to log in again"
            )
        password = password or (self._password() if self._password else None)
        assert password is not None
        body = self._http.request(
            "POST",
            "/v1/auth/login",
            headers={},
            json={"email": self.email, "password": password.get_secret_value()},
            idempotent=False,
            timeout=self._spending_timeout(),
        ).json()
        self._accept(body, "login")

    def _accept(self, body: Any, what: str) -> None:
        access = _field(body, "access_token", "accessToken")
        refresh = _field(body, "refresh_token", "refreshToken")
        if access is None or refresh is None:
            seen = ", ".join(sorted(body)) if isinstance(body, dict) else "none"
            raise RotationError(f"boltly: {what} answer had no access_token/refresh_token; fields seen: {seen}")
        failpoints.hit("boltly-before-refresh-saved")
        # the old refresh token is dead from now on: save the new one before anything else
        self.keeper.save(secret(refresh))
        failpoints.hit("boltly-after-refresh-saved")
        self._access = secret(access)
        self._expires = _jwt_expiry(access) or time.time() + 600


def _jwt_expiry(token: str) -> float | None:
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return float(claims["exp"])
    except (IndexError, ValueError, KeyError, TypeError):
        return None


class Boltly(ApiProvider):
    kind = "boltly"
    copies_scopes = True

    def __init__(self, *, http: HttpCore, session: BoltlySession) -> None:
        self._http = http
        self.session = session

    def _as_user(self, method: str, path: str, **kwargs: Any) -> Any:
        for attempt in (1, 2):
            headers = {"Authorization": f"Bearer {self.session.access_token().get_secret_value()}"}
            try:
                return self._http.request(method, path, headers=headers, **kwargs)
            except KeyRefused:
                if attempt == 2:
                    raise
                self.session.invalidate()  # the JWT expired early: log in again once
        raise AssertionError("unreachable")

    def create_key(self, *, name: str, like: KeyInfo | None) -> CreatedKey:
        if like is None or not like.scopes:
            raise RotationError("boltly: the scopes of the key being replaced are unknown; refusing to guess")
        response = self._as_user(
            "POST", PATH, json={"name": name, "scopes": list(like.scopes)}, idempotent=False, side_effect=True
        )
        body = response.json()
        key_id, key = _field(body, "id"), _field(body, "secret_key")
        if key_id is None or key is None:
            require(
                body.get("data", body) if isinstance(body, dict) else body,
                "id",
                "secret_key",
                provider=self.kind,
                what="create response",
            )
        assert key_id is not None and key is not None
        return CreatedKey(id=key_id, name=name, secret=secret(key))

    def list_keys(self) -> list[KeyInfo]:
        body = require(self._as_user("GET", PATH).json(), "data", provider=self.kind, what="list response")
        keys = []
        for item in body["data"]:
            item = require(item, "id", provider=self.kind, what="list item")
            if item.get("revoked_at"):
                continue
            keys.append(
                KeyInfo(
                    id=str(item["id"]),
                    name=str(item.get("name") or ""),
                    created_at=parse_time(item.get("created_at")),
                    last_used_at=parse_time(item.get("last_used_at")),
                    usage_reported="last_used_at" in item,
                    scopes=tuple(sorted(item.get("scopes") or ())),
                    prefix=str(item["prefix"]) if isinstance(item.get("prefix"), str) else None,
                )
            )
        return keys

    def prove_key(self, *, key_id: str, key: SecretStr) -> str:
        """The list's `prefix` of `key_id` must begin the stored key, and no other live key's may;
        the key must authenticate."""
        keys = self.list_keys()
        found = next((k for k in keys if k.id == key_id), None)
        if found is None:
            raise KeyNotProven(f"key {key_id} is not among the boltly account's live keys")
        if found.prefix is None:
            return super().prove_key(key_id=key_id, key=key)  # no prefix listed: a person must adopt it
        value = key.get_secret_value()
        prefix = found.prefix.rstrip("…*. ")
        if len(prefix) < MIN_PREFIX or not value.startswith(prefix):
            raise KeyNotProven(
                f"the stored api_key does not begin with the prefix boltly lists for key {key_id}: "
                "it is another key than key_id names"
            )
        twins = [k.id for k in keys if k.id != key_id and k.prefix and value.startswith(k.prefix.rstrip("…*. "))]
        if twins:
            raise KeyNotProven(f"the stored api_key matches the prefixes of {key_id} and {', '.join(twins)}")
        self.probe(key=key)
        return "prefix"

    def revoke_key(self, *, key_id: str) -> None:
        try:
            self._as_user("DELETE", f"{PATH}/{key_id}")
        except KeyNotFound:
            return

    def probe(self, *, key: SecretStr) -> ProbeResult:
        # a key without tokens:read gets 403: it still authenticated
        with contextlib.suppress(PermissionDenied):
            self._http.request("GET", PATH, headers={"X-API-Key": key.get_secret_value()})
        return ProbeResult()


class BoltlySettings(ProviderSettings):
    """Boltly: keys are made with a user's JWT. The refresh token rotates on every refresh, so
    rotator keeps it in a file of its own (written atomically, mode 0600) the moment it changes."""

    type: Literal["boltly"]
    base_url: HttpUrl = "https://api.boltly.online"
    """Boltly's API."""
    email: str
    """The Boltly user whose session makes and revokes keys."""
    password: CredentialSource | None = None
    """Used when no refresh token works (first start, or a crash lost the newest one)."""
    refresh_token_file: Path | None = None
    """Where the refresh token is kept; default: `<instance>.refresh` in the state directory. One host
    only: use refresh_token_store for replicas."""
    refresh_token_store: StoreRef | None = None
    """Keep the refresh token in a store instead, where every replica and command can reach it:
    `{aws: {secret_id: ...}}` or `{vault: {path: ...}}`, a secret that exists (any value to start
    with). It is replaced by compare-and-set, and refreshes are serialised through the state database."""

    @model_validator(mode="after")
    def _one_place(self) -> BoltlySettings:
        if self.refresh_token_file is not None and self.refresh_token_store is not None:
            raise ValueError("keep the refresh token in refresh_token_file or refresh_token_store, not both")
        return self

    def endpoint(self) -> str | None:
        return self.base_url

    def store_refs(self) -> dict[str, StoreRefPart]:
        return {"refresh_token_store": self.refresh_token_store.part} if self.refresh_token_store else {}


def session_of(settings: BoltlySettings, ctx: Context) -> BoltlySession:
    """One session per Boltly instance and process: its JWT and rotating refresh token are shared."""

    def make() -> BoltlySession:
        services, instance = ctx.services, ctx.instance
        keeper: TokenKeeper
        if (ref := settings.refresh_token_store) is not None:
            keeper = StoreKeeper(services.store(ref.instance), ref.location, where=f"{ref.instance}:{ref.location}")
        else:
            keeper = FileKeeper(settings.refresh_token_file or services.state_dir() / f"{instance}.refresh")
        password = settings.password
        # one refresh at a time across every process on this state database: a refresh spends
        # the token, and two processes spending the same one would lock each other out
        hold = max(timedelta(seconds=4 * SPENDING_TIMEOUT), 4 * settings.timeout)  # two refreshes and a login
        return BoltlySession(
            http=services.http(instance, settings.base_url, settings.timeout.total_seconds()),
            email=settings.email,
            password=(lambda: read_credential(password, f"providers.{instance}.password")) if password else None,
            keeper=keeper,
            serialised=lambda: services.exclusive(f"boltly-refresh:{instance}", ttl=hold, wait=hold),
        )

    return ctx.services.once(f"boltly-session:{ctx.instance}", make)


def _build(settings: BoltlySettings, ctx: Context) -> Boltly:
    http = ctx.services.http(ctx.instance, settings.base_url, settings.timeout.total_seconds())
    return Boltly(http=http, session=session_of(settings, ctx))


TYPE = ProviderType(name="boltly", settings=BoltlySettings, build=_build)
