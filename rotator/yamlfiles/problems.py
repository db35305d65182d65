"""Validation errors as people read them: `file:line: message`, the line of the key that caused
each (or the environment variable that set the value), the closest known field for an unknown
one, and what a value should be rather than the parser's pattern."""

from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from ruamel.yaml.comments import CommentedMap

from rotator.errors import InputError
from rotator.yamlfiles.source import brief, walk

M = TypeVar("M", bound=BaseModel)


def problems_from(
    exc: ValidationError,
    doc: Any,
    path: Path,
    *,
    overridden: dict[tuple[str, ...], str] | None = None,
    data: Any = None,
    model: Any = None,
) -> list[str]:
    """`file:line: message` per error; an error in a value an environment variable set names the
    variable. `data` is what was validated (the file with the overrides applied); with `model`
    (what validated it), an unknown field is told the closest known one."""
    out = []
    for raw in exc.errors():
        err: dict[str, Any] = dict(raw)
        loc = tuple(p for p in err["loc"] if isinstance(p, str | int))
        if err["type"] == "extra_forbidden" and model is not None and loc:
            err = {**err, "hint": _closest(str(loc[-1]), fields_at(model, loc[:-1]))}
        if err["type"] == "string_pattern_mismatch":
            # the regular expression is the parser's business: say what the value should be
            wanted = _described(model, loc) if model is not None else None
            err = {
                **err,
                "msg": f"{str(err.get('input'))[:80]!r} is not allowed here" + (f": {wanted}" if wanted else ""),
            }
        if err["type"] in ("union_tag_invalid", "union_tag_not_found"):
            loc = (*loc, str(err.get("ctx", {}).get("discriminator", "type")).strip("'"))
        plain = _unioned(data, loc) if data is not None else loc
        variable = _variable_for(plain, doc, overridden or {})
        if variable is not None:
            message = _message(err, plain)
            if err["type"] in ("list_type", "dict_type", "model_type", "model_attributes_type"):
                message += ' (from the environment a list or a mapping is JSON: \'["a", "b"]\', \'{"k": "v"}\')'
            out.append(f"environment variable {variable}: {brief(message)}")
            continue
        line, keys = walk(doc, loc)
        out.append(f"{path}:{line}: {brief(_message(err, keys))}")
    return out


def _message(err: Any, keys: tuple[str | int, ...]) -> str:
    where = ".".join(str(p) for p in keys) or "(top level)"
    if err["type"] == "extra_forbidden":
        return (f"unknown field '{keys[-1]}'" if keys else "unknown field") + str(err.get("hint", ""))
    if err["type"] == "missing":
        return f"missing required field '{keys[-1]}'" if keys else "missing field"
    if err["type"] == "union_tag_invalid":
        ctx = err.get("ctx", {})
        from rotator.plugin.registry import unloadable  # only for this message: a broken plugin

        if isinstance(ctx.get("tag"), str) and (why := unloadable(ctx["tag"])) is not None:
            return f"{where}: type {ctx['tag']!r}: {why}"
        return f"{where}: unknown type {ctx.get('tag')!r} (installed: {ctx.get('expected_tags')})"
    if err["type"] == "union_tag_not_found":
        return f"{where}: missing (say which type this is)"
    return f"{where}: {err['msg'].removeprefix('Value error, ')}"


def _closest(name: str, known: list[str] | None) -> str:
    if not known:
        return ""
    import difflib

    near = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    return f" (did you mean '{near[0]}'?)" if near else f" (known: {', '.join(sorted(known))})"


def fields_at(model: Any, loc: tuple[str | int, ...]) -> list[str] | None:
    """The fields of the model found by following `loc` from `model` through its fields, mappings,
    lists, optionals and tagged unions (a part that names a union member's `type` picks it)."""
    found = _model_at(model, loc)
    return None if found is None else list(found.model_fields)


def _described(model: Any, loc: tuple[str | int, ...]) -> str | None:
    """The description of the field at `loc` (its Field(description=...)), if it has one."""
    if not loc or not isinstance(loc[-1], str):
        return None
    owner = _model_at(model, loc[:-1])
    field = owner.model_fields.get(loc[-1]) if owner is not None else None
    return field.description if field is not None else None


def _model_at(model: Any, loc: tuple[str | int, ...]) -> type[BaseModel] | None:
    import types
    import typing

    def plain(tp: Any, part: str | int | None) -> tuple[Any, bool]:
        """`tp` without Annotated and Optional; a tagged union member when `part` names its type."""
        while True:
            origin, args = typing.get_origin(tp), typing.get_args(tp)
            if origin is typing.Annotated:
                tp = args[0]
            elif origin in (typing.Union, types.UnionType):
                members = [a for a in args if a is not type(None)]
                tagged = [m for m in members if part is not None and _tag_of(m) == part]
                if tagged:
                    return tagged[0], True
                if len(members) != 1:
                    return None, False
                tp = members[0]
            else:
                return tp, False

    tp = model
    for part in loc:
        tp, consumed = plain(tp, part)
        if consumed:
            continue
        origin, args = typing.get_origin(tp), typing.get_args(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel) and isinstance(part, str) and part in tp.model_fields:
            tp = tp.model_fields[part].annotation
        elif origin is dict and args:
            tp = args[1]
        elif origin in (list, tuple) and args and isinstance(part, int):
            tp = args[0]
        else:
            return None
    tp, _ = plain(tp, None)
    return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None


def _tag_of(member: Any) -> Any:
    import typing

    field = getattr(member, "model_fields", {}).get("type")
    if field is None:
        return None
    values = typing.get_args(field.annotation)
    return values[0] if len(values) == 1 else None


def _unioned(data: Any, loc: tuple[str | int, ...]) -> tuple[str | int, ...]:
    """`loc` without the union members pydantic puts in it (`providers.bw.brandwave.timeout`):
    a part the data does not have where the data names it as its `type`."""
    kept: list[str | int] = []
    node = data
    for part in loc:
        if isinstance(node, dict) and part not in node and node.get("type") == part:
            continue
        kept.append(part)
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        else:
            node = None
    return tuple(kept)


def _variable_for(loc: tuple[str | int, ...], doc: Any, overridden: dict[tuple[str, ...], str]) -> str | None:
    """The environment variable an error at `loc` comes from, if any: one that set a value at or
    inside `loc` (`ROTATOR_DAEMON__LISTEN__X` made listen a mapping) or around it, or one that
    made the section the error lies in, which the file does not have (`ROTATOR_TEAMS__T__…`). The
    closest one is named."""
    best: tuple[int, str] | None = None
    for keys, variable in overridden.items():
        shared = 0
        while shared < min(len(keys), len(loc)) and keys[shared] == loc[shared]:
            shared += 1
        touches = shared in (len(keys), len(loc)) or not _has(doc, keys[:shared])
        if shared and touches and (best is None or shared > best[0]):
            best = (shared, variable)
    return None if best is None else best[1]


def _has(doc: Any, keys: tuple[str, ...]) -> bool:
    node = doc
    for key in keys:
        if not isinstance(node, CommentedMap):
            return False
        match = next((k for k in node if str(k).replace("-", "_").lower() == key), None)
        if match is None:
            return False
        node = node[match]
    return True


def validate(model: type[M], doc: Any, path: Path) -> M:
    """Validate a parsed document against a pydantic model; errors carry file:line."""
    try:
        return model.model_validate(doc if doc is not None else {})
    except ValidationError as exc:
        raise InputError(problems_from(exc, doc, path, model=model)) from None
