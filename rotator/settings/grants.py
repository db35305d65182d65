"""Grants completed once rotator.yaml's store instances are known: each grant names its store
instance (inferred when left out), and its fields are checked and completed by that store's type
(`StoreRefPart.grant_patterns`), so a third store type brings its own grant shape."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol, Self, TypeVar

from rotator.plugin import registry
from rotator.plugin.settings import Grant
from rotator.yamlfiles import source as yamlsource


class Granting(Protocol):
    """A provider instance's settings, as far as its grants go."""

    @property
    def grants(self) -> list[Grant]: ...

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self: ...


P = TypeVar("P", bound=Granting)
Unresolved = tuple[str, int, str]
"""(provider instance, the grant's index, why it cannot be resolved)."""


def resolved(providers: Mapping[str, P], store_types: Mapping[str, str]) -> tuple[dict[str, P], list[Unresolved]]:
    """`providers` with every grant resolved against the store instances (name → type name), and
    the grants that cannot be: each left as written, so that it grants nothing."""
    unresolved: list[Unresolved] = []
    done: dict[str, P] = {}
    for name, provider in providers.items():
        grants = []
        for index, grant in enumerate(provider.grants):
            try:
                grants.append(_resolved(store_types, grant))
            except ValueError as exc:
                grants.append(grant)
                unresolved.append((name, index, str(exc)))
        done[name] = provider.model_copy(update={"grants": grants})
    return done, unresolved


def located(
    unresolved: list[Unresolved], doc: Any, path: Path | None, overridden: dict[tuple[str, ...], str]
) -> list[str]:
    """Each unresolved grant at its file:line, or naming the environment variable that set it."""
    return [
        f"{_where(('providers', name, 'grants'), index, doc, path, overridden)}providers.{name}.grants[{index}]: {why}"
        for name, index, why in unresolved
    ]


def _where(
    keys: tuple[str, ...], index: int, doc: Any, path: Path | None, overridden: dict[tuple[str, ...], str]
) -> str:
    """`file:line: `, or `environment variable NAME: ` when a variable set these keys or a level above."""
    for depth in range(len(keys), 0, -1):
        if (variable := overridden.get(keys[:depth])) is not None:
            return f"environment variable {variable}: "
    return f"{path or '(environment)'}:{yamlsource.line_of(doc, (*keys, index))}: "


def _fields(type_name: str) -> set[str]:
    return set(registry.store(type_name).ref.location_fields())


def _resolved(store_types: Mapping[str, str], grant: Grant) -> Grant:
    instance = grant.store or _instance_for(store_types, set(grant.patterns))
    if instance not in store_types:
        known = ", ".join(sorted(store_types)) or "none"
        raise ValueError(f"store {instance!r} is not in stores (known: {known})")
    ref = registry.store(store_types[instance]).ref
    return Grant.model_construct(store=instance, patterns=ref.grant_patterns(grant.patterns))


def _instance_for(store_types: Mapping[str, str], fields: set[str]) -> str:
    """The store instance a grant without `store` means: the one whose type's references have its
    fields — of several, the one named like its type (`aws`, `vault`), else the grant must say."""
    fitting = [name for name, kind in store_types.items() if fields <= _fields(kind)]
    named_like_type = [name for name in fitting if name == store_types[name]]
    if len(fitting) == 1 or len(named_like_type) == 1:
        return (named_like_type or fitting)[0]
    if not fitting:
        raise ValueError(f"no store instance has locations with {', '.join(sorted(fields))}; say which (store: …)")
    raise ValueError(f"say which store (store: …): {', '.join(sorted(fitting))} all fit")
