"""Grants completed once rotator.yaml's store instances are known: each grant names its store
instance (inferred when left out), and its fields are checked and completed by that store's type
(`StoreRefPart.grant_patterns`), so a third store type brings its own grant shape."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from rotator import registry
from rotator.config_parts import Grant
from rotator.yamlfiles import source as yamlsource

if TYPE_CHECKING:
    from rotator.settings.models import Settings


def resolved(
    settings: Settings, doc: Any, path: Path | None, overridden: dict[tuple[str, ...], str] | None = None
) -> tuple[Settings, list[str]]:
    """`settings` with every grant resolved, and problems for those that cannot be: at their
    file:line, or naming the environment variable that set them (`overridden`, from loading)."""
    problems: list[str] = []
    providers = {}
    for name, provider in settings.providers.items():
        grants = []
        for index, grant in enumerate(provider.grants):
            try:
                grants.append(_resolved(settings, grant))
            except ValueError as exc:
                grants.append(grant)  # left as written: a grant that cannot be resolved grants nothing
                where = _where(("providers", name, "grants"), index, doc, path, overridden or {})
                problems.append(f"{where}providers.{name}.grants[{index}]: {exc}")
        providers[name] = provider.model_copy(update={"grants": grants})
    return settings.model_copy(update={"providers": providers}), problems


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


def _resolved(settings: Settings, grant: Grant) -> Grant:
    instance = grant.store or _instance_for(settings, set(grant.patterns))
    if instance not in settings.stores:
        known = ", ".join(sorted(settings.stores)) or "none"
        raise ValueError(f"store {instance!r} is not in stores (known: {known})")
    ref = registry.store(settings.stores[instance].type).ref
    return Grant.model_construct(store=instance, patterns=ref.grant_patterns(grant.patterns))


def _instance_for(settings: Settings, fields: set[str]) -> str:
    """The store instance a grant without `store` means: the one whose type's references have its
    fields — of several, the one named like its type (`aws`, `vault`), else the grant must say."""
    fitting = [name for name, store in settings.stores.items() if fields <= _fields(store.type)]
    named_like_type = [name for name in fitting if name == settings.stores[name].type]
    if len(fitting) == 1 or len(named_like_type) == 1:
        return (named_like_type or fitting)[0]
    if not fitting:
        raise ValueError(f"no store instance has locations with {', '.join(sorted(fields))}; say which (store: …)")
    raise ValueError(f"say which store (store: …): {', '.join(sorted(fitting))} all fit")
