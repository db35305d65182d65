"""The pieces of rotator.yaml that every adapter's own settings are made of.

A provider type's settings subclass `ProviderSettings`, a store type's `StoreSettings`, and a
store type's reference in policy files `StoreRefPart` (see rotator.plugin.registry). Nothing here knows
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


class Grant(Strict):
    """Store locations a provider instance may serve: a store instance, and each field of that store
    type's references in policy files as a glob pattern (`*` any run of characters) — AWS
    `{store: aws, secret_id: "prod/support/*"}`, Vault `{store: vault, mount: secret, path: "support/*"}`.

    The store type says which fields a grant has and checks them (`StoreRefPart.grant_patterns`);
    rotator.yaml's loading does that once the store instances are known (`resolved`).
    """

    store: str | None = None
    """The store instance; without it, the one instance whose type's references have these fields
    (the one named like its type first: `aws` for a secret_id grant, `vault` for a path grant)."""
    patterns: dict[str, str] = {}
    """The store reference's fields as patterns, written beside `store` (`secret_id: …`, `path: …`)."""

    @model_validator(mode="before")
    @classmethod
    def _fields_are_patterns(cls, data: Any) -> Any:
        """What rotator.yaml writes (`{store: aws, secret_id: …}`) as this model's two fields;
        rotator itself builds resolved grants with model_construct."""
        if not isinstance(data, dict):
            return data
        if "patterns" in data:
            raise ValueError("unknown field 'patterns' (a grant writes its store's fields: secret_id, path, …)")
        if "store" in data and not isinstance(data["store"], str):
            raise ValueError("store: the name of a store instance in stores (or leave it out)")
        patterns = {k: v for k, v in data.items() if k != "store"}
        for name, value in patterns.items():
            if not isinstance(value, str):
                raise ValueError(f"{name}: a grant's fields are text patterns, not {type(value).__name__}")
        return {"store": data.get("store"), "patterns": patterns}

    @model_validator(mode="after")
    def _some_pattern(self) -> Grant:
        if not self.patterns:
            raise ValueError("a grant names a store location (secret_id for AWS, path for Vault, …)")
        return self

    def describe(self) -> str:
        return ":".join([self.store or "?", *self.patterns.values()])


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


@functools.cache
def _location_fields(ref: type[BaseModel]) -> tuple[str, ...]:
    # per reference type, once: `granted` asks for every secret of a fleet
    return tuple(name for name in ref.model_fields if name != "instance")


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

    @classmethod
    def location_fields(cls) -> tuple[str, ...]:
        """The fields that say where a secret is (all but `instance`), in order: a grant's fields."""
        return _location_fields(cls)

    @classmethod
    def grant_patterns(cls, patterns: dict[str, str]) -> dict[str, str]:
        """`patterns` as a grant of this store type: only this reference's fields, each checked
        (`check_pattern`), in the reference's order, a field left out taking its default; a
        ValueError says what is wrong."""
        fields = cls.location_fields()
        if unknown := sorted(set(patterns) - set(fields)):
            known = ", ".join(fields)
            raise ValueError(f"{', '.join(unknown)}: not a field of this store's locations (fields: {known})")
        checked = {}
        for name in fields:
            if name in patterns:
                checked[name] = cls.check_pattern(name, patterns[name])
            elif cls.model_fields[name].is_required():
                raise ValueError(f"missing {name}")
            else:
                checked[name] = str(cls.model_fields[name].get_default(call_default_factory=True))
        return checked

    @classmethod
    def check_pattern(cls, name: str, pattern: str) -> str:
        """A grant's pattern for field `name`, checked (and normalised) as this type needs."""
        return pattern

    def granted(self, grant: Grant, store: StoreSettings) -> bool:
        """Whether `grant` covers this secret, whatever the spelling: by default, each of its
        patterns matches the field of the same name (a resolved grant has every field)."""
        return (
            grant.store == self.instance
            and set(grant.patterns) == set(self.location_fields())  # resolved: a field left out is no wildcard
            and all(fnmatch.fnmatchcase(str(getattr(self, name)), p) for name, p in grant.patterns.items())
        )

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
