"""The pieces of rotator.yaml that every adapter's own settings are made of.

A provider type's settings subclass `ProviderSettings`, a store type's `StoreSettings`, and a
store type's reference in policy files `StoreRefPart` (see rotator.registry). Nothing here knows
any vendor or store by name, except the AWS and Vault shapes of a `Grant`.
"""

from __future__ import annotations

import fnmatch
import functools
import ipaddress
import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Self
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from rotator.durations import PositiveDuration


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def check_http_url(value: str) -> str:
    """A URL both the standard library and httpx read alike, http(s), with a host and a port in
    range: what passes never fails later in a command (httpx refuses what urlsplit lets by)."""
    import httpx

    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 (a port out of range raises here, not later in a command)
        httpx.URL(value)
    except (ValueError, httpx.InvalidURL) as exc:
        raise ValueError(f"not a URL ({exc})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("not an http(s) URL with a host")
    if parts.port == 0:
        raise ValueError("port 0 is no port to send to")
    if not host_name_ok(parts.hostname):
        raise ValueError(f"host {parts.hostname[:80]!r} is not a host name or an IP address")
    return value


_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")


def host_name_ok(host: str) -> bool:
    """An IP address, or a DNS name: labels of 1-63 letters, digits, `-` (`_` too, which internal
    names use), 253 characters in all. urllib and httpx both let `ex ample.com` and `a..b` by, and
    the request fails only when a rotation makes it."""
    try:
        ipaddress.ip_address(host.strip("[]"))
        return True
    except ValueError:
        pass
    name = host.lower().removesuffix(".")
    return 0 < len(name) <= 253 and all(_LABEL.fullmatch(label) for label in name.split("."))


_HOST_PATTERN = re.compile(r"(?:\[[0-9a-fA-F:.*?]+\]|[A-Za-z0-9_.*?-]+)(?::(?P<port>[0-9]{1,5}|\*))?")


def check_host_pattern(value: str) -> str:
    """An `allowed_hosts` entry: `host`, `*.domain`, `host:port`, `[v6]:port`; a typo that could
    match no host (a blank, a scheme, a path) is refused rather than silently allowing nothing."""
    found = _HOST_PATTERN.fullmatch(value)
    port = found["port"] if found else None
    if not found or (port is not None and port != "*" and not 0 < int(port) < 65536):
        raise ValueError(
            f"allowed host {value[:80]!r} is not a host pattern (host, *.domain, host:port; no scheme or path)"
        )
    return value


HostPattern = Annotated[str, AfterValidator(check_host_pattern)]


HttpUrl = Annotated[str, AfterValidator(check_http_url)]
"""A URL rotator sends requests to: http(s), a host, a port in range; checked at validate, so no
command meets one it cannot parse."""


class CredentialSource(Strict):
    """Where an admin credential comes from. `current: true` means the secret's own current key."""

    env: str | None = None
    file: Path | None = None
    current: bool = False

    @model_validator(mode="after")
    def _exactly_one(self) -> CredentialSource:
        chosen = [self.env is not None, self.file is not None, self.current]
        if sum(chosen) != 1:
            raise ValueError("give exactly one of env, file or current: true")
        return self


AWS_SECRET_ID = re.compile(
    r"[A-Za-z0-9/_+=.@*?-]{1,512}|arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.@*?-]+"
)
_UNSAFE_PATH = re.compile(r"[%?#\\\s\x00-\x1f\x7f]")


def check_vault_path(value: str, what: str, *, allow_glob: bool = False) -> str:
    """A Vault mount or path that no HTTP client or Vault re-interprets: no `.`/`..`/empty segments,
    no `%`, `?`, `#`, backslash, white space or control characters."""
    stripped = value.strip("/")
    if not stripped:
        raise ValueError(f"{what} is empty")
    if _UNSAFE_PATH.search(value) or (not allow_glob and ("*" in value or "[" in value)):
        raise ValueError(f"{what} {value!r}: only letters, digits and - _ . / (no %, ?, #, \\, spaces)")
    if any(part in ("", ".", "..") for part in stripped.split("/")):
        raise ValueError(f"{what} {value!r} has an empty, '.' or '..' segment")
    return stripped


class Grant(Strict):
    """Store locations a provider instance may serve, as glob patterns (`*` any run of characters).

    AWS: `{store: aws, secret_id: "prod/support/*"}` (a name or ARN pattern);
    Vault: `{store: vault, mount: secret, path: "support/*"}`.
    """

    store: str = "aws"
    """The store instance; default `aws` for a secret_id grant, `vault` for a path grant."""
    secret_id: str | None = None
    """AWS: secret names or ARNs this instance may serve, as a pattern (`prod/support/*`)."""
    mount: str = "secret"
    """Vault: the KV v2 mount of `path`."""
    path: str | None = None
    """Vault: KV paths under `mount` this instance may serve, as a pattern (`support/*`)."""

    @model_validator(mode="before")
    @classmethod
    def _default_store(cls, data: Any) -> Any:
        if isinstance(data, dict) and "store" not in data and "path" in data:
            return {**data, "store": "vault"}
        return data

    @model_validator(mode="after")
    def _one_kind(self) -> Grant:
        if (self.secret_id is None) == (self.path is None):
            raise ValueError("a grant names secret_id (AWS) or path (Vault), one of them")
        if self.secret_id is not None and not AWS_SECRET_ID.fullmatch(self.secret_id):
            raise ValueError(f"secret_id pattern {self.secret_id!r} is not an AWS secret name or ARN")
        if self.path is not None:
            check_vault_path(self.path, "grant path", allow_glob=True)
            check_vault_path(self.mount, "grant mount")
        return self

    def covers(self, *, store: str, location: str) -> bool:
        """Whether this grant allows `location` (an AWS secret id, or `<mount>:<path>`) in store `store`."""
        if store != self.store:
            return False
        if self.secret_id is not None:
            return fnmatch.fnmatchcase(location, self.secret_id)
        mount, _, path = location.partition(":")
        return (
            mount == self.mount.strip("/") and self.path is not None and fnmatch.fnmatchcase(path, self.path.strip("/"))
        )

    def describe(self) -> str:
        return (
            f"{self.store}:{self.secret_id}" if self.secret_id is not None else f"{self.store}:{self.mount}:{self.path}"
        )


class RateLimit(Strict):
    """At most `requests` in any `per`, the way vendors write their limits (100 per minute), held
    by rotator itself for all rotations of the process. Defaults: Texting Blue 60 per minute (its
    smallest plan), GoBlue 100 per minute and 1,000 per hour; none for the others."""

    requests: int = Field(ge=1, le=1_000_000)
    """At most this many requests…"""
    per: PositiveDuration
    """…in any stretch of time this long (`{requests: 100, per: 1m}`)."""


class ProviderSettings(Strict):
    """What every provider instance has, whatever its type; a type adds its own fields and
    `type: Literal["<its name>"]`."""

    type: str
    """The provider's type; its own settings follow below."""
    grants: list[Grant] = []
    """The store locations this instance's keys may be written to; a policy secret elsewhere is refused."""
    timeout: PositiveDuration = timedelta(seconds=10)
    """How long one request to the provider may take: connecting, sending and reading the answer."""
    rate_limits: list[RateLimit] | None = None
    """Client-side request limits, shared by every rotation of the process; default: the vendor's
    documented ones (Texting Blue 60 per minute, GoBlue 100 per minute and 1,000 per hour); [] for none."""
    max_concurrent: int | None = Field(default=None, ge=1, le=10_000)
    """At most this many of the instance's rotations advanced at once by the daemons, across all
    replicas together (counted in the state database); default: no limit beyond `daemon.workers`."""

    def endpoint(self) -> str | None:
        """The URL rotator sends this instance's credentials to (checked for plain HTTP)."""
        return None

    def store_refs(self) -> dict[str, StoreRefPart]:
        """Store locations the settings name (field → reference), checked against `stores`."""
        return {}


class StoreSettings(Strict):
    """What every store instance has; a type adds its own fields and `type: Literal["<its name>"]`."""

    type: str
    """The store's type; its own settings follow below."""
    timeout: PositiveDuration = timedelta(seconds=10)
    """How long one request to the store may take."""

    def identity(self, instance: str) -> tuple[str, ...]:
        """The physical store this instance reaches: two instances with one identity hold the same
        secrets (two names for one AWS region, one Vault). By default each instance is its own."""
        return (self.type, instance)

    def transport_warnings(self, name: str) -> list[str]:
        """Settings that send credentials where others could read or replace them."""
        return []


_FIELD_SETS: dict[frozenset[str], frozenset[str]] = {}


class Lean(Strict):
    """A model there is one of per secret (100,000 of them in a large fleet). pydantic keeps, per
    instance, the set of fields given (200 to 700 bytes); here instances given the same fields share
    one frozen set. So `model_copy(update=...)` fails on these models rather than changing others."""

    @model_validator(mode="after")
    def _share_fields_set(self) -> Self:
        given = frozenset(self.__pydantic_fields_set__)
        object.__setattr__(self, "__pydantic_fields_set__", _FIELD_SETS.setdefault(given, given))
        return self


class StoreRefPart(Lean):
    """A secret's place in one store type, as policy files write it under the type's name:
    `store: {aws: {secret_id: ...}}`. `instance` names the store instance in rotator.yaml."""

    instance: str

    @property
    def location(self) -> str:
        """The secret's place in its store as the store adapter takes it."""
        raise NotImplementedError

    def identities(self, store: StoreSettings) -> list[tuple[tuple[str, ...], str | None]]:
        """Every secret this reference may name, as the store resolves it, whatever the spelling:
        (the store's identity + a canonical location, the account when one is known). Two
        references sharing one, in accounts that may be the same, name one secret."""
        return [((*store.identity(self.instance), self.location), None)]

    def granted(self, grant: Grant, store: StoreSettings) -> bool:
        """Whether `grant` covers this secret, whatever the spelling."""
        return grant.covers(store=self.instance, location=self.location)

    def problems(self, store: StoreSettings) -> list[str]:
        """What makes this reference unusable with this store instance (another region, say)."""
        return []


@functools.lru_cache(maxsize=64)
def url_identity(url: str | None) -> str:
    """A URL reduced to what tells servers apart: scheme, host (lower case) and port."""
    parts = urlsplit(url or "")
    try:
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme.lower())
    except ValueError:
        port = None
    return f"{parts.scheme.lower()}://{(parts.hostname or '').lower()}:{port}"


def plain_http(url: str | None) -> bool:
    """A plain http:// URL to another host (loopback is fine)."""
    parsed = urlsplit(url or "")
    host = (parsed.hostname or "").lower()
    return parsed.scheme == "http" and host not in ("localhost", "::1") and not host.startswith("127.")
