"""One `secrets:` entry of a policy file read into a SecretSpec.

A fleet's entry (name, provider, store, policy and access, each a string or a list of strings) is
read without the entry model: SecretEntry builds three models per secret, which cost more than
parsing the YAML and held most of a 100,000-secret fleet's memory. Only the store reference still
goes through its store type's model (its checks are the store plugin's). Any other entry, and any
entry the short way doubts, goes through SecretEntry, which says what is wrong.
"""

from __future__ import annotations

import functools
import re
import sys
from typing import Any

from pydantic import TypeAdapter, ValidationError
from pydantic_core import SchemaValidator

from rotator.settings.policy_models import NAME, Place, SecretEntry, SecretSpec
from rotator.stores.refs import StoreRef

_PLAIN_KEYS = frozenset({"name", "provider", "store", "policy", "access"})
_NAME = re.compile(NAME)
_ENTRY = TypeAdapter(SecretEntry)
_SHARED: dict[tuple[str, ...], tuple[str, ...]] = {}
"""Each list of people as one tuple for all the secrets naming it (a handful of lists in a fleet)."""


def read(item: Any) -> SecretSpec:
    """The entry as a SecretSpec; a ValidationError of SecretEntry for a wrong one."""
    spec = _plain(item)
    return spec if spec is not None else _ENTRY.validate_python(item).spec()


def _plain(item: Any) -> SecretSpec | None:
    """The entry read the short way, or None where SecretEntry must judge it."""
    if type(item) is not dict or not _PLAIN_KEYS.issuperset(item):
        return None
    name, provider, store, policy = item.get("name"), item.get("provider"), item.get("store"), item.get("policy")
    if type(name) is not str or type(provider) is not str or type(policy) is not str or type(store) is not dict:
        return None
    if len(store) != 1 or _NAME.fullmatch(name) is None:
        return None
    access: Any = item.get("access", ())
    if access != ():
        if type(access) is not list:
            return None
        try:
            access = tuple(map(sys.intern, access))
        except TypeError:  # what is not exactly a str is not interned: SecretEntry judges it
            return None
        if len(_SHARED) > 10_000:  # files of ever new lists, reloaded again and again: no leak
            _SHARED.clear()
        access = _SHARED.setdefault(access, access)
    ((kind, where),) = store.items()
    validator = _part_validators().get(kind)
    if validator is None or type(where) is not dict:
        return None
    try:
        part = validator.validate_python(where)
    except ValidationError:
        return None
    # provider, policy, store type and people are shared by thousands of secrets: one string (and
    # one tuple of people) for all, not one per secret
    return SecretSpec(name, sys.intern(provider), Place(sys.intern(kind), part), sys.intern(policy), access)


@functools.cache
def _part_validators() -> dict[str, SchemaValidator]:
    """Each store type's reference model's validator, as StoreRef holds them (the store types
    installed); the model's own, without TypeAdapter's wrapping around each call."""
    validators = {}
    for kind, field in StoreRef.model_fields.items():
        # `<type's ref> | None`: the model is the member that is not None
        (ref,) = [member for member in getattr(field.annotation, "__args__", ()) if member is not type(None)]
        validators[kind] = ref.__pydantic_validator__
    return validators
