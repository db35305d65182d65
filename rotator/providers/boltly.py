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

import contextlib
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import SecretStr, model_validator

from rotator.credentials import read_credential
from rotator.errors import (
    KeyNotFound,
    KeyNotProven,
    KeyRefused,
    PermissionDenied,
    RotationError,
)
from rotator.keys import secret
from rotator.plugin.http import HttpCore, parse_time, require
from rotator.plugin.provider import ApiProvider, CreatedKey, KeyInfo, ProbeResult
from rotator.plugin.registry import Context, ProviderType
from rotator.plugin.settings import CredentialSource, HttpUrl, ProviderSettings, StoreRefPart
from rotator.providers.boltly_session import (
    SPENDING_TIMEOUT,
    BoltlySession,
    FileKeeper,
    StoreKeeper,
    TokenKeeper,
    first_field,
)
from rotator.stores.refs import StoreRef

PATH = "/v1/developer-access/api-keys"
MIN_PREFIX = len("sk_live_") + 4
"""A listed prefix shorter than the vendor's fixed part plus four characters cannot tell keys apart."""


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
        key_id, key = first_field(body, "id"), first_field(body, "secret_key")
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


TYPE = ProviderType(
    name="boltly", settings=BoltlySettings, build=_build, key_prefixes=("sk_live_", "sk_test_", "rt_")
)  # API keys, and the refresh tokens that make them (the access tokens are JWTs)
