"""The extension points: provider types and store types, each registered under a Python entry point.

A provider type is one object, `ProviderType`, registered in the `rotator.providers` group (a
store type: `StoreType`, `rotator.stores`). rotator's own five providers and two stores are
registered the same way, in its pyproject.toml:

    [project.entry-points."rotator.providers"]
    brandwave = "rotator.providers.brandwave:TYPE"

The type brings its rotator.yaml settings (a `ProviderSettings` / `StoreSettings` model whose
`type` field is the literal name), its factory, and what it can do (API-managed or made by a person
is the adapter class's `managed_by`; its documented rate limits are `default_limits`). rotator.yaml's
provider and store sections and the policy files' store references are built from what is
installed, so an unknown type is refused naming the installed ones.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import timedelta
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from pydantic import SecretStr

from rotator.errors import InputError
from rotator.plugin.settings import CredentialSource, ProviderSettings, StoreRefPart, StoreSettings
from rotator.runtime.ratelimit import Limit

if TYPE_CHECKING:
    from rotator.plugin.http import HttpCore
    from rotator.plugin.provider import Provider
    from rotator.plugin.store import Store

T = TypeVar("T")
PROVIDERS, STORES = "rotator.providers", "rotator.stores"


class Services(Protocol):
    """What a factory may ask of rotator (the App): shared clients, credentials, other stores."""

    connections: int

    def http(self, instance: str, base_url: str, timeout: float) -> HttpCore:
        """The instance's HTTP client: connections and rate limits shared by the whole process."""

    def credential(
        self, source: CredentialSource, what: str, own_key: Callable[[], SecretStr] | None
    ) -> Callable[[], SecretStr]:
        """A credential read when a call needs it; `current: true` is `own_key` (Context.own_key)."""

    def store(self, instance: str) -> Store:
        """A store instance of rotator.yaml."""

    def exclusive(self, name: str, *, ttl: timedelta, wait: timedelta) -> AbstractContextManager[None]:
        """A lock across every process on the state database."""

    def state_dir(self) -> Path:
        """rotator's private state directory."""

    def once(self, key: str, make: Callable[[], T]) -> T:
        """One object per `key` and process (a session shared by every rotation)."""


@dataclass(frozen=True)
class Context:
    """What a provider factory is given besides its settings."""

    instance: str
    """The provider instance's name in rotator.yaml."""
    services: Services
    own_key: Callable[[], SecretStr] | None = None
    """The key of the secret acted on, as rotator means it for `current: true`: within a rotation
    its old key until promotion and its new key after; None when no secret is acted on."""

    def credential(self, source: CredentialSource, what: str) -> Callable[[], SecretStr]:
        """A credential of the instance's settings, read when a call needs it."""
        return self.services.credential(source, what, self.own_key)


@dataclass(frozen=True)
class ProviderType:
    name: str
    settings: type[ProviderSettings]
    build: Callable[[Any, Context], Provider]
    """(the instance's settings, context) → the adapter."""
    default_limits: tuple[Limit, ...] = ()
    """The vendor's documented request limits, held client-side unless rotator.yaml says otherwise."""
    key_prefixes: tuple[str, ...] = ()
    """How the vendor's keys and tokens begin (`bwpat_`): text that looks like one is masked in every
    log line, even a key rotator was never given (log.py)."""


@dataclass(frozen=True)
class StoreType:
    name: str
    settings: type[StoreSettings]
    ref: type[StoreRefPart]
    """What a policy file writes under `store: {<name>: {...}}`."""
    build: Callable[[Any, Services, str], Store]
    """(the instance's settings, services, the instance's name) → the store."""


_UNLOADABLE: dict[str, str] = {}
"""Types installed but not loadable, by name: why (a plugin written for another rotator, a broken
package). The others still work; rotator.yaml naming one of these is told why (yamlfiles/problems.py)."""


def _load(group: str, kind: type[T]) -> dict[str, T]:
    found: dict[str, T] = {}
    for point in sorted(entry_points(group=group), key=lambda p: p.name):
        try:
            registered = point.load()
        except Exception as exc:  # another package's import error, whatever it is
            _UNLOADABLE[point.name] = (
                f"entry point {group}:{point.name} ({point.value}) cannot be loaded: {type(exc).__name__}: {exc} "
                "(a plugin written for another version of rotator? CHANGELOG.md, Upgrading)"
            )
            continue
        if not isinstance(registered, kind):
            _UNLOADABLE[point.name] = f"entry point {group}:{point.name} ({point.value}) is not a {kind.__name__}"
            continue
        if point.name != getattr(registered, "name", None):
            named = getattr(registered, "name", None)
            _UNLOADABLE[point.name] = f"entry point {group}:{point.name} registers a type named {named!r}"
            continue
        found[point.name] = registered
    if not found:
        raise InputError([f"no {group} installed: install rotator (`pip install .`), not only its sources"])
    return found


def unloadable(name: str) -> str | None:
    """Why an installed type called `name` could not be loaded, if it could not."""
    return _UNLOADABLE.get(name)


@functools.cache
def providers() -> dict[str, ProviderType]:
    """Every installed provider type, by name."""
    return _load(PROVIDERS, ProviderType)


@functools.cache
def stores() -> dict[str, StoreType]:
    """Every installed store type, by name."""
    return _load(STORES, StoreType)


def provider(name: str) -> ProviderType:
    try:
        return providers()[name]
    except KeyError:
        why = unloadable(name) or f"unknown provider type {name!r} (installed: {', '.join(providers())})"
        raise InputError([why]) from None


def store(name: str) -> StoreType:
    try:
        return stores()[name]
    except KeyError:
        why = unloadable(name) or f"unknown store type {name!r} (installed: {', '.join(stores())})"
        raise InputError([why]) from None
