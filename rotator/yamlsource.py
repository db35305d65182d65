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


def line_of(doc: Any, loc: tuple[str | int, ...]) -> int:
    """The 1-based line of the deepest node in `loc` that the document still has."""
    line = 1
    node = doc
    for part in loc:
        if isinstance(node, CommentedMap) and part in node:
            line = node.lc.key(part)[0] + 1
            node = node[part]
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node):
            line = node.lc.item(part)[0] + 1
            node = node[part]
        else:
            break
    if isinstance(node, CommentedMap | CommentedSeq) and node.lc.line is not None and not loc:
        line = node.lc.line + 1
    return line


def problems_from(exc: ValidationError, doc: Any, path: Path, prefix: tuple[str | int, ...] = ()) -> list[str]:
    out = []
    for err in exc.errors():
        loc = prefix + tuple(p for p in err["loc"] if isinstance(p, str | int))
        # pydantic adds the tag of a tagged union to loc; it is not a key of the file
        keys = tuple(p for p in loc if not (isinstance(p, str) and p.startswith("function-")))
        where = ".".join(str(p) for p in keys) or "(top level)"
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            message = f"unknown field '{keys[-1]}'" if keys else "unknown field"
        elif err["type"] == "missing":
            message = f"missing required field '{keys[-1]}'" if keys else "missing field"
        else:
            message = f"{where}: {message.removeprefix('Value error, ')}"
        out.append(f"{path}:{line_of(doc, keys)}: {message}")
    return out


def validate(model: type[M], doc: Any, path: Path) -> M:
    """Validate a parsed document against a pydantic model; errors carry file:line."""
    try:
        return model.model_validate(doc if doc is not None else {})
    except ValidationError as exc:
        raise InputError(problems_from(exc, doc, path)) from None
