"""YAML files read so that every problem names its file and line.

ruamel.yaml's round-trip loader keeps the line of every key and refuses duplicate keys (PyYAML
silently keeps the last one). Pydantic validation errors are mapped back to the line of the key
that caused them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from rotator.errors import InputError

M = TypeVar("M", bound=BaseModel)


def load(path: Path) -> Any:
    """Parse one YAML file; raise InputError with `file:line: message` on any syntax problem."""
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError([f"{path}: cannot read: {exc.strerror}"]) from None
    try:
        return yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        what = (exc.problem or str(exc)).strip()
        if "duplicate key" in what:
            what = f"{what} (each key may appear once)"
        raise InputError([f"{path}:{line}: {what}"]) from None
    except YAMLError as exc:
        raise InputError([f"{path}:1: {exc}"]) from None


def _walk(doc: Any, loc: tuple[str | int, ...]) -> tuple[int, tuple[str | int, ...]]:
    """Follow `loc` into the document: the line of the deepest node reached, and the keys used.

    Parts the document does not have (pydantic's tagged-union names) are skipped, except a last
    part, which names a missing or unknown field.
    """
    line = doc.lc.line + 1 if isinstance(doc, CommentedMap | CommentedSeq) and doc.lc.line is not None else 1
    node, kept = doc, []
    for index, part in enumerate(loc):
        if isinstance(node, CommentedMap) and part in node:
            line = node.lc.key(part)[0] + 1
            node = node[part]
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node):
            line = node.lc.item(part)[0] + 1
            node = node[part]
        elif index != len(loc) - 1:
            continue
        kept.append(part)
    return line, tuple(kept)


def line_of(doc: Any, loc: tuple[str | int, ...]) -> int:
    """The 1-based line of the deepest node in `loc` that the document has."""
    return _walk(doc, loc)[0]


def problems_from(exc: ValidationError, doc: Any, path: Path) -> list[str]:
    out = []
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if isinstance(p, str | int))
        if err["type"] == "union_tag_invalid":
            loc = (*loc, str(err.get("ctx", {}).get("discriminator", "type")).strip("'"))
        line, keys = _walk(doc, loc)
        where = ".".join(str(p) for p in keys) or "(top level)"
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            message = f"unknown field '{keys[-1]}'" if keys else "unknown field"
        elif err["type"] == "missing":
            message = f"missing required field '{keys[-1]}'" if keys else "missing field"
        else:
            message = f"{where}: {message.removeprefix('Value error, ')}"
        out.append(f"{path}:{line}: {message}")
    return out


def validate(model: type[M], doc: Any, path: Path) -> M:
    """Validate a parsed document against a pydantic model; errors carry file:line."""
    try:
        return model.model_validate(doc if doc is not None else {})
    except ValidationError as exc:
        raise InputError(problems_from(exc, doc, path)) from None
