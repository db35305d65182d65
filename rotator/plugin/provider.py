"""The provider interfaces. Adapters hold only their vendor's API calls; they know no lifecycle.

Two families (providers.md): `ApiProvider`s create and revoke keys through their API;
`DashboardProvider`s only let a person do it in a dashboard, so rotator asks, waits, and checks
what the person did (format, the provider accepts it, same account as the old key).
"""

from __future__ import annotations

import abc
import enum
import re
from dataclasses import dataclass, field
from datetime import datetime

from pydantic import SecretStr

from rotator.errors import KeyNotProven
from rotator.runtime.ratelimit import Limit


class ManagedBy(enum.Enum):
    """Who can create and revoke keys: the API itself, or only a person in a dashboard."""

    API = "api"
    OPERATOR = "operator"


@dataclass(frozen=True)
class KeyInfo:
    """A key as a provider's list shows it; never the secret itself."""

    id: str
    name: str
    created_at: datetime | None = None
    last_used_at: datetime | None = None
    scopes: tuple[str, ...] = ()
    usage_reported: bool = False
    """False when the provider's list has no last-used field at all (not the same as "never used")."""
    prefix: str | None = None
    """The first characters of the key as the provider lists them (Boltly), to match a key to its id."""


@dataclass(frozen=True)
class CreatedKey:
    id: str
    name: str
    secret: SecretStr = field(repr=False)


@dataclass(frozen=True)
class ProbeResult:
    """A key the provider accepted, and what it says the key belongs to (account, team, forms)."""

    identity: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Usage:
    """What a provider shows of a key's use: a last-used time, or a per-key request counter."""

    last_used_at: datetime | None = None
    counter_remaining: int | None = None


class Provider(abc.ABC):
    kind: str
    default_limits: tuple[Limit, ...] = ()
    """The vendor's documented request limits, held client-side unless rotator.yaml says otherwise."""
    managed_by: ManagedBy

    @abc.abstractmethod
    def probe(self, *, key: SecretStr) -> ProbeResult:
        """One authenticated call with `key`. Raises KeyRefused (401) if the provider does not accept it."""

    def usage(self, *, key_id: str | None, key: SecretStr) -> Usage | None:
        """Usage telemetry for a key, or None when the provider has none (the signal is then unavailable)."""
        return None


class ApiProvider(Provider):
    managed_by = ManagedBy.API
    copies_scopes = False
    """True when a new key must get the scopes of the key it replaces (Boltly)."""

    def usage(self, *, key_id: str | None, key: SecretStr) -> Usage | None:
        """The list's last-used time of `key_id` (Brandwave `lastUsedAt`, Boltly `last_used_at`)."""
        found = next((k for k in self.list_keys() if k.id == key_id), None)
        if found is None or not found.usage_reported:
            return None
        return Usage(last_used_at=found.last_used_at)

    def prove_key(self, *, key_id: str, key: SecretStr) -> str:
        """Show that `key` is the live key the provider lists as `key_id`; return how it was shown.

        Raises KeyRefused when `key` does not authenticate, KeyNotProven when it is another key or
        the provider offers nothing that could tell (then a person adopts it: `rotator adopt`).
        """
        raise KeyNotProven(
            f"{self.kind} offers no way to show that the stored api_key is key {key_id}; "
            "check it by hand and run `rotator adopt SECRET`"
        )

    @abc.abstractmethod
    def create_key(self, *, name: str, like: KeyInfo | None) -> CreatedKey:
        """Create a key named `name` (with the scopes of `like`, where the provider has scopes).

        Raises CreateOutcomeUnknown when the request may have reached the provider but no answer
        came back: the caller must list keys by name before creating again.
        """

    @abc.abstractmethod
    def list_keys(self) -> list[KeyInfo]:
        """Every live key of the account. Raises ProviderUnavailable, PermissionDenied, UnexpectedResponse."""

    @abc.abstractmethod
    def revoke_key(self, *, key_id: str) -> None:
        """Revoke a key. A key that is already gone counts as revoked."""


class DashboardProvider(Provider):
    managed_by = ManagedBy.OPERATOR
    key_pattern: re.Pattern[str]
    key_form: str
    """The documented format, said to a person: e.g. `tb_live_ followed by 32 characters`."""
    prefix_length: int
    """How many leading characters name a key to a person (vendor prefix + 4)."""

    def check_format(self, key: SecretStr) -> str | None:
        """None when `key` has the provider's documented format, else what is wrong (never the key)."""
        value = key.get_secret_value()
        if value != value.strip():
            return "the key has leading or trailing white space"
        if not self.key_pattern.fullmatch(value):
            return f"not a {self.kind} key: expected {self.key_form} ({len(value)} characters given)"
        return None

    def prefix(self, key: SecretStr) -> str:
        return key.get_secret_value()[: self.prefix_length] + "…"

    @abc.abstractmethod
    def create_instructions(self, *, name: str, permissions: list[str] | None) -> str:
        """What a person must do to make the new key: where, what name, which permissions."""

    def revoke_instructions(self, *, prefix: str) -> str:
        return f"revoke the old key {prefix} in the {self.kind} dashboard"
