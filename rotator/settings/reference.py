"""docs/settings.md, generated from the settings models: every setting of rotator.yaml with its type,
default, environment variable and description, so the reference cannot drift from the code.

A field's description is its pydantic `description`, else the docstring under it (the project's
habit; pydantic's `use_attribute_docstrings` would read the source at every start). A field with
neither is an error: `make docs` fails and so does tests/unit/test_docs.py. Never imported by the
commands: `python -m rotator.settings.reference --write` (or `make docs`) rewrites the file.
"""

from __future__ import annotations

import ast
import functools
import inspect
import itertools
import sys
import textwrap
import types
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from rotator import durations
from rotator.plugin import registry
from rotator.plugin.settings import CredentialSource, Grant, HostPattern, HttpUrl, ProviderSettings, StoreSettings
from rotator.policy.rules import BUILT_IN, Policy
from rotator.settings.config import ENV_PREFIX
from rotator.settings.models import Settings
from rotator.stores.refs import StoreRef

TARGET = Path(__file__).parents[2] / "docs" / "settings.md"
REGENERATE = "make docs (or: .venv/bin/python -m rotator.settings.reference --write)"

# models shown as one value in words, not expanded into their fields
_NAMED: dict[type[BaseModel], str] = {
    CredentialSource: "credential (`{env: VAR}`, `{file: PATH}` or `{current: true}`)",
    Policy: "policy (as in [policy files](policies.md))",
    StoreRef: "store location (as in policy files: `{aws: {secret_id: …}}` or `{vault: {path: …}}`)",
}
_VALIDATED_TEXT = {id(get_args(HttpUrl)[1]): "URL", id(get_args(HostPattern)[1]): "host pattern"}
_UNCOUNTED = ("text", "true or false")
# `policies` tunes the built-in policies: what it starts from is theirs, not an empty mapping
_STARTS_FROM: dict[tuple[type[BaseModel], str], Any] = {(Settings, "policies"): BUILT_IN}

HEADER = """\
# Settings reference

<!-- Generated from the settings models by `make docs` (rotator/settings/reference.py); do not edit. -->

Every setting of `rotator.yaml`, with its default and the environment variable that overrides it
([configuration](configuration.md) explains the file and where it is looked for). A variable
names the levels in capitals joined by double underscores, a provider or store instance by its name
with `-` written as `_` (`ROTATOR_PROVIDERS__BRANDWAVE_PROD__BASE_URL` for `brandwave-prod`); a
list or a mapping is given as JSON. A duration is a number and a unit: `500ms`, `30s`, `5m`, `2h`,
`90d`, `1h30m`. `<name>` stands for a name you choose.
"""


@functools.cache
def _docstrings(cls: type) -> dict[str, str]:
    """The docstring under each annotated attribute of `cls` itself (not its bases)."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError):
        return {}
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
    found = {}
    for statement, following in itertools.pairwise(body):
        if (
            isinstance(statement, ast.AnnAssign)
            and isinstance(statement.target, ast.Name)
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            found[statement.target.id] = following.value.value
    return found


def description(model: type[BaseModel], name: str) -> str | None:
    """A field's description on one line: its `description`, else its docstring, else None."""
    text = model.model_fields[name].description
    for cls in model.__mro__:
        if text is None and isinstance(cls, type) and issubclass(cls, BaseModel):
            text = _docstrings(cls).get(name)
    return " ".join(inspect.cleandoc(text).split()) if text else None


def _words(annotation: Any, metadata: list[Any]) -> str:
    """A type as an operator reads it."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin in (Union, types.UnionType):
        return " or ".join(_words(a, metadata) for a in args if a is not type(None))
    if origin is Literal:
        return "one of " + ", ".join(f"`{a}`" for a in args)
    if origin is list:
        return f"list of {_plural(_words(args[0], []))}"
    if origin is dict:
        keys = _words(args[0], [])
        keys = "names" if keys == "text" else keys.replace("one of ", "")
        return f"mapping of {keys} to {_plural(_words(args[1], []))}"
    if hasattr(annotation, "__metadata__"):  # Annotated[...] inside a list or mapping
        return _words(args[0], list(annotation.__metadata__))
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return _NAMED.get(annotation, "section")
    bounds = [f"at least {m.ge}" for m in metadata if hasattr(m, "ge")]
    bounds += [f"at most {m.le:,}" for m in metadata if hasattr(m, "le")]
    plain = {bool: "true or false", int: "whole number", timedelta: "duration", Path: "path", str: "text"}
    word = next((_VALIDATED_TEXT[id(m)] for m in metadata if id(m) in _VALIDATED_TEXT), None)
    word = word or plain.get(annotation, getattr(annotation, "__name__", str(annotation)))
    return f"{word} ({', '.join(bounds)})" if bounds else word


def _plural(words: str) -> str:
    if words.startswith("one of "):
        return "any of " + words.removeprefix("one of ")
    if words in _UNCOUNTED:
        return words
    first, space, rest = words.partition(" (")
    return (f"{first[:-1]}ies" if first.endswith("y") else f"{first}s") + f"{space}{rest}"


def _flow(value: Any) -> str:
    """A value as YAML's flow style writes it."""
    if isinstance(value, BaseModel):
        return _flow(value.model_dump(mode="json", exclude_defaults=True, round_trip=True))
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_flow(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_flow(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, timedelta):
        return durations.render(value)
    if value is None:
        return "none"
    if value == "":
        return '""'
    return str(value)


def _default(model: type[BaseModel], name: str, field: FieldInfo) -> str:
    if field.default is PydanticUndefined and field.default_factory is None:
        return "required"
    value = _STARTS_FROM.get((model, name), field.get_default(call_default_factory=True))
    return "none" if value is None else f"`{_flow(value)}`"


def _variable(path: list[str], structured: bool) -> str:
    """The environment variable for a dotted path; inside a list, the list's. A structured value
    (a list, a mapping, a section) is given as JSON."""
    levels: list[str] = []
    for part in path:
        levels.append(part.removesuffix("[]").replace("-", "_"))
        if part.endswith("[]"):
            structured = True
            break
    return f"`{ENV_PREFIX}{'__'.join(levels).upper()}`" + (" (JSON)" if structured else "")


def _structured(annotation: Any) -> bool:
    origin, args = get_origin(annotation), get_args(annotation)
    if origin in (Union, types.UnionType):
        return any(_structured(a) for a in args)
    return origin in (list, dict) or (isinstance(annotation, type) and issubclass(annotation, BaseModel))


def _expandable(annotation: Any) -> tuple[type[BaseModel], str] | None:
    """The model a field's value is made of, and how a path goes into it: '' (a section), '[]' (a
    list of them) or '<name>' (a mapping of names to them)."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin in (Union, types.UnionType):
        models = [a for a in args if a is not type(None)]
        return _expandable(models[0]) if len(models) == 1 else None
    if origin is list and args:
        inner = _expandable(args[0])
        return (inner[0], "[]") if inner and inner[1] == "" else None
    if origin is dict and args:
        inner = _expandable(args[1])
        return (inner[0], "<name>") if inner and inner[1] == "" else None
    if isinstance(annotation, type) and issubclass(annotation, BaseModel) and annotation not in _NAMED:
        return annotation, ""
    return None


Row = tuple[str, str, str, str, str]


def rows(model: type[BaseModel], path: list[str], skip: frozenset[str], missing: list[str]) -> Iterator[Row]:
    """One row per setting of `model` at `path`; a section's settings follow its row (a plain
    section, one of its kind, has no row of its own); `missing` learns the fields without a description."""
    for name, field in model.model_fields.items():
        if name in skip:
            continue
        text = description(model, name)
        if text is None:
            missing.append(f"{model.__module__}.{model.__qualname__}.{name}")
        here = [*path, name]
        if model is Grant and name == "patterns":
            yield from _grant_fields(path, here, missing)
            continue
        expand = _expandable(field.annotation)
        if expand is None or expand[1] or path:
            kind = _words(field.annotation, field.metadata)
            variable = _variable(here, _structured(field.annotation))
            yield (".".join(here), kind, _default(model, name, field), variable, text or "")
        if expand is not None:
            inner, step = expand
            within = {"": here, "[]": [*path, f"{name}[]"], "<name>": [*here, "<name>"]}[step]
            yield from rows(inner, within, frozenset(), missing)


def _grant_fields(path: list[str], here: list[str], missing: list[str]) -> Iterator[Row]:
    """A grant's fields are those of its store type's locations: one row per installed type's field."""
    for type_name, kind in sorted(registry.stores().items()):
        if not kind.ref.__module__.startswith("rotator."):
            continue  # another package's type documents its own
        for name in kind.ref.location_fields():
            field = kind.ref.model_fields[name]
            text = description(kind.ref, name)
            if text is None:
                missing.append(f"{kind.ref.__module__}.{kind.ref.__qualname__}.{name}")
            default = _default(kind.ref, name, field)
            yield (".".join([*path, name]), "text (a pattern)", default, _variable(here, True), f"{type_name}: {text}")


def _table(found: list[Row]) -> str:
    lines = ["| Setting | Type | Default | Environment variable | Description |", "|---|---|---|---|---|"]
    for setting, kind, default, variable, text in found:
        cells = [f"`{setting}`", kind, default, variable, text]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def _ours(kinds: dict[str, Any]) -> dict[str, type[BaseModel]]:
    """rotator's own types' settings (another package's type documents its own)."""
    return {n: t.settings for n, t in kinds.items() if t.settings.__module__.startswith("rotator.")}


def render() -> str:
    """The whole of docs/settings.md; LookupError names every field without a description."""
    missing: list[str] = []
    sections: list[str] = []

    def section(title: str, intro: str, model: type[BaseModel], path: list[str], skip: frozenset[str]) -> None:
        found = list(rows(model, path, skip, missing))
        if path[-1:] == ["<name>"] and found and found[0][0].endswith(".type"):
            # the common table's `type`: the types installed, not "text"
            kinds = ", ".join(f"`{k}`" for k in kinds_of[path[0]])
            found[0] = (found[0][0], f"one of {kinds}", *found[0][2:])
        sections.append(f"## {title}\n\n{intro}\n\n{_table(found)}")

    kinds_of = {"providers": _ours(registry.providers()), "stores": _ours(registry.stores())}
    every = frozenset(Settings.model_fields)
    own = [name for name, field in Settings.model_fields.items() if _expandable(field.annotation)]
    section("Top level", "Settings at the top of the file.", Settings, [], every & {*own, "providers", "stores"})
    for name in own:
        section(f"`{name}`", description(Settings, name) or "", Settings, [], every - {name})
    for name, base in (("providers", ProviderSettings), ("stores", StoreSettings)):
        section(f"`{name}`", description(Settings, name) or "", base, [name, "<name>"], frozenset())
        for kind, settings in kinds_of[name].items():
            section(
                f"{name[:-1].capitalize()} type `{kind}`",
                f"What `type: {kind}` adds to the settings every {name[:-1]} has.",
                settings,
                [name, "<name>"],
                frozenset(base.model_fields),
            )
    if missing:
        raise LookupError(sorted(set(missing)))
    return HEADER + "\n" + "\n".join(sections)


def main(argv: list[str]) -> int:
    """Print the reference, or with --write rewrite docs/settings.md; exit 1 naming undocumented fields."""
    try:
        text = render()
    except LookupError as exc:
        print("settings without a description (give each a docstring):", *exc.args[0], sep="\n  ", file=sys.stderr)
        return 1
    if "--write" in argv:
        TARGET.write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
