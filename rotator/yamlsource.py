"""YAML files read so that every problem names its file and line.

ruamel.yaml's round-trip loader keeps the line of every key and refuses duplicate keys (PyYAML
silently keeps the last one). Pydantic validation errors are mapped back to the line of the key
that caused them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from rotator.errors import InputError

M = TypeVar("M", bound=BaseModel)


MAX_DEPTH = 64


def load(path: Path) -> Any:
    """Parse one YAML file whose top level is a mapping (or empty); raise InputError with
    `file:line: message` on any problem: not UTF-8 (with the byte's offset), syntax, duplicate
    keys, a `null` value, nesting deeper than MAX_DEPTH, or aliases that expand far beyond the
    file's size (a "billion laughs" bomb)."""
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError([f"{path}: cannot read: {exc.strerror}"]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise InputError(
            [f"{path}:{line}: not UTF-8: byte 0x{raw[exc.start]:02x} at offset {exc.start}; save the file as UTF-8"]
        ) from None
    if (deep_at := too_deep(text)) is not None:
        raise InputError([f"{path}:{deep_at}: nested deeper than {MAX_DEPTH} levels"])
    try:
        doc = yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        what = (exc.problem or str(exc)).strip()
        if "duplicate key" in what:
            what = f"{what} (each key may appear once)"
        raise InputError([f"{path}:{line}: {what}"]) from None
    except RecursionError:
        raise InputError([f"{path}:1: nested too deeply to read (at most {MAX_DEPTH} levels)"]) from None
    except YAMLError as exc:
        raise InputError([f"{path}:1: {exc}"]) from None
    except (TypeError, ValueError, AttributeError, LookupError) as exc:
        # the parser's own limits on hostile input (e.g. a mapping used as a key): still bad input
        raise InputError([f"{path}:1: not a document rotator can read ({type(exc).__name__}: {exc})"]) from None
    if doc is not None and not isinstance(doc, CommentedMap):
        raise InputError([f"{path}:1: the top level must be a mapping of keys to values, not a {type(doc).__name__}"])
    _check_shape(doc, path, budget=10 * len(raw) + 10_000)
    return doc


_NESTING = re.compile(r"[\n\"'\[\]{}]")


def too_deep(text: str) -> int | None:
    """The line where `[`/`{` nesting passes MAX_DEPTH, found before the (recursive, slow) parser
    sees it; quoted text is skipped roughly, which is enough to bound the parser's work."""
    depth, line, quote = 0, 1, ""
    # only the characters that matter, found by the regex engine (a Python loop over every
    # character took a second for a fleet's 14 MB of policies)
    for found in _NESTING.finditer(text):
        char = found.group()
        if char == "\n":
            line += 1
        elif quote:
            if char == quote:
                quote = ""
        elif char in "\"'":
            quote = char
        elif char in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return line
        elif char in "]}":
            depth = max(depth - 1, 0)
    return None


def _check_shape(doc: Any, path: Path, *, budget: int) -> None:
    """Walk the document as a consumer would see it (aliases expanded), within `budget` values."""
    problems: set[tuple[int, str]] = set()
    stack: list[tuple[Any, int]] = [(doc, 1)]
    visited = 0
    while stack:
        node, depth = stack.pop()
        visited += 1
        if visited > budget:
            raise InputError([f"{path}:1: aliases expand to more than {budget} values; refusing an alias bomb"])
        if depth > MAX_DEPTH:
            line = node.lc.line + 1 if isinstance(node, CommentedMap | CommentedSeq) else 1
            raise InputError([f"{path}:{line}: nested deeper than {MAX_DEPTH} levels"])
        if isinstance(node, CommentedMap):
            for key, value in node.items():
                if value is None:
                    problems.add((node.lc.key(key)[0] + 1, f"{key}: null is not a value here; leave the key out"))
                stack.append((value, depth + 1))
        elif isinstance(node, CommentedSeq):
            for index, value in enumerate(node):
                if value is None:
                    problems.add((node.lc.item(index)[0] + 1, "an empty (null) list item"))
                stack.append((value, depth + 1))
    if problems:
        raise InputError([f"{path}:{line}: {what}" for line, what in sorted(problems)])


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


def problems_from(
    exc: ValidationError, doc: Any, path: Path, *, overridden: dict[tuple[str, ...], str] | None = None
) -> list[str]:
    """`file:line: message` per error; an error in a value an environment variable set names the variable."""
    out = []
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if isinstance(p, str | int))
        variable = next((v for keys, v in (overridden or {}).items() if loc[: len(keys)] == keys), None)
        if variable is not None:
            out.append(f"environment variable {variable}: {err['msg'].removeprefix('Value error, ')}")
            continue
        if err["type"] == "union_tag_invalid":
            loc = (*loc, str(err.get("ctx", {}).get("discriminator", "type")).strip("'"))
        line, keys = _walk(doc, loc)
        where = ".".join(str(p) for p in keys) or "(top level)"
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            message = f"unknown field '{keys[-1]}'" if keys else "unknown field"
        elif err["type"] == "missing":
            message = f"missing required field '{keys[-1]}'" if keys else "missing field"
        elif err["type"] == "union_tag_invalid":
            ctx = err.get("ctx", {})
            message = f"{where}: unknown type {ctx.get('tag')!r} (installed: {ctx.get('expected_tags')})"
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
