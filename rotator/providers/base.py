"""The provider interface. Adapters hold only their vendor's API calls; they know no lifecycle."""

from __future__ import annotations

import abc
import enum
from dataclasses import dataclass, field
from datetime import datetime

from pydantic import SecretStr


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


@dataclass(frozen=True)
class CreatedKey:
    id: str
    name: str
    secret: SecretStr = field(repr=False)


@dataclass(frozen=True)
class ProbeResult:
    """A key the provider accepted, and what it says the key belongs to (account, scopes)."""

    identity: dict[str, str] = field(default_factory=dict)


class Provider(abc.ABC):
    kind: str
    managed_by: ManagedBy

    @abc.abstractmethod
    def create_key(self, *, name: str, like: KeyInfo | None) -> CreatedKey:
        """Create a key named `name` (with the same permissions as `like`, where the provider has any).

        Raises CreateOutcomeUnknown when the request may have reached the provider but no answer
        came back: the caller must list keys by name before creating again.
        """

    @abc.abstractmethod
    def list_keys(self) -> list[KeyInfo]:
        """Every key of the account. Raises ProviderUnavailable, PermissionDenied, UnexpectedResponse."""

    @abc.abstractmethod
    def revoke_key(self, *, key_id: str) -> None:
        """Revoke a key. A key that is already gone counts as revoked."""

    @abc.abstractmethod
    def probe(self, *, key: SecretStr) -> ProbeResult:
        """One authenticated call with `key`. Raises KeyRefused (401) if the provider does not accept it."""
