"""Boltly's user session (providers.md, seed 004): the JWT that makes API keys, and the refresh
token that is itself a rotating secret — every refresh returns a new one and kills the old.

Each new refresh token is saved (a `TokenKeeper`: a file, written atomically, fsync'd, mode 0600,
or a secret in a store, replaced by compare-and-set) before anything else happens, and refreshes
go one process at a time (the caller's `serialised`, a lock every replica and command shares),
reading the newest token inside the lock, so two processes never spend the same token.
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
from pathlib import Path
from typing import Any, Protocol

from pydantic import SecretStr

from rotator.errors import (
    CreateOutcomeUnknown,
    KeyRefused,
    RotationError,
    StoreConflict,
)
from rotator.keys import secret
from rotator.plugin.http import HttpCore
from rotator.plugin.store import Store, StoredValue
from rotator.runtime import failpoints

SPENDING_TIMEOUT = 30.0
"""Seconds to wait for a login's or refresh's answer, however short the instance's timeout."""


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


def first_field(body: Any, *names: str) -> str | None:
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
        access = first_field(body, "access_token", "accessToken")
        refresh = first_field(body, "refresh_token", "refreshToken")
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
