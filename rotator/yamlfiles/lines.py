"""Lines for problems found in a large policy file that the fast reader read.

The fast reader keeps no lines, so a problem used to send every file to the careful reader
(ruamel, pure Python): about 200 s and 2.4 GB for a 20 MB fleet file with one bad reference. Past
BIG bytes, a problem's line is instead asked for while the message is written (a placeholder),
and every line asked for in a file is found afterwards in one pass over libyaml's event stream
(C; a few seconds and constant memory for 20 MB). The lines are the careful reader's: a key's
line for a mapping entry, the item's first line for a list item, and where a path leads nowhere,
the line of the deepest node it reaches.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

BIG = 1024 * 1024
"""Files (together) past this size have their problems' lines found here; smaller ones are read
again by the careful reader, which is quick at that size."""

Loc = tuple[str | int, ...]
_ids = itertools.count()
_PENDING = re.compile("\x00([0-9]+)\x00")


class PendingLine(int):
    """A line not found yet: written into a message as a placeholder that `resolve` replaces.
    NUL never occurs in a message otherwise (the input pre-check refuses it)."""

    def __str__(self) -> str:
        return f"\x00{int(self)}\x00"

    def __format__(self, spec: str) -> str:
        return str(self)


@dataclass
class Lines:
    """The lines asked for in one file, found together by `resolve`."""

    path: Path
    wanted: dict[int, Loc] = field(default_factory=dict)

    def line(self, loc: Loc) -> PendingLine:
        pending = PendingLine(next(_ids))
        self.wanted[int(pending)] = loc
        return pending


@dataclass
class View:
    """Part of a file as plain data (one secret's entry), at `prefix` in the file: enough to say
    which parts of an error's path exist, as the careful reader's document would."""

    lines: Lines
    plain: Any
    prefix: Loc = ()


def walk(view: View, loc: Loc) -> tuple[PendingLine, Loc]:
    """source.walk for a View: the line of the deepest node reached, and the keys used."""
    if view.plain is None:  # nothing to check the path against: its deepest node is found later
        return view.lines.line((*view.prefix, *loc)), (*view.prefix, *loc)
    node, kept, reached = view.plain, list(view.prefix), list(view.prefix)
    for index, part in enumerate(loc):
        present = (isinstance(node, dict) and part in node) or (
            isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        )
        if present:
            node = node[part]
        elif index != len(loc) - 1:
            continue
        else:
            kept.append(part)
            break
        kept.append(part)
        reached.append(part)
    return view.lines.line(tuple(reached)), tuple(kept)


def resolve(problems: list[str], files: list[Lines]) -> list[str] | None:
    """The problems with every placeholder replaced by its line; None when libyaml cannot read a
    file yaml-rs read (an escape it refuses), and the careful reader must say where."""
    found: dict[int, int] = {}
    for lines in files:
        if lines.wanted:
            try:
                found.update(_find(lines))
            except yaml.YAMLError:
                return None
    return [_PENDING.sub(lambda m: str(found.get(int(m.group(1)), 1)), problem) for problem in problems]


def _find(lines: Lines) -> dict[int, int]:
    wanted = set(lines.wanted.values())
    prefixes = {loc[:n] for loc in wanted for n in range(len(loc) + 1)}
    at = _lines_of(lines.path.read_text(encoding="utf-8"), prefixes)
    result = {}
    for pending, loc in lines.wanted.items():
        deepest = next((loc[:n] for n in range(len(loc), -1, -1) if loc[:n] in at), None)
        result[pending] = 1 if deepest is None else at[deepest]
    return result


@dataclass
class _Frame:
    path: Loc
    mapping: bool
    key: str | None = None
    expect_key: bool = True
    index: int = 0


def _events(text: str) -> Iterator[Any]:
    """libyaml's events of `text`, up to the end of the stream, read one at a time (constant
    memory: no node graph) by its C parser."""
    loader = yaml.CSafeLoader(text)
    try:
        while type(event := loader.get_event()) is not yaml.StreamEndEvent:
            yield event
    finally:
        loader.dispose()


def _lines_of(text: str, prefixes: set[Loc]) -> dict[Loc, int]:
    """The 1-based line of every node whose path is in `prefixes`: a mapping entry at its key."""
    at: dict[Loc, int] = {}
    stack: list[_Frame] = []
    skipping = 0  # depth inside a collection nothing is asked about: only its nesting is followed
    opening, closing = (yaml.MappingStartEvent, yaml.SequenceStartEvent), (yaml.MappingEndEvent, yaml.SequenceEndEvent)
    nodes = (yaml.ScalarEvent, yaml.AliasEvent, *opening)
    for event in _events(text):
        kind = type(event)
        if skipping:
            if kind in opening:
                skipping += 1
            elif kind in closing:
                skipping -= 1
            continue
        if kind in closing:
            stack.pop()
            continue
        if kind not in nodes:
            continue
        path = _place(stack, event, kind, prefixes, at)
        if kind in opening:
            if path is None:
                skipping = 1
            else:
                stack.append(_Frame(path=path, mapping=kind is yaml.MappingStartEvent))
    return at


def _place(stack: list[_Frame], event: Any, kind: type, prefixes: set[Loc], at: dict[Loc, int]) -> Loc | None:
    """The path of the node `event` starts, if anything is asked about it (its line noted);
    None otherwise (a key is noted here and has no path of its own)."""
    line = event.start_mark.line + 1
    if not stack:
        at.setdefault((), line)
        return ()
    top = stack[-1]
    if top.mapping and top.expect_key:
        top.expect_key = False
        top.key = event.value if kind is yaml.ScalarEvent else None
        if top.key is not None and (entry := _entry(top.path, top.key, prefixes)) is not None:
            at.setdefault(entry, line)
        return None
    if top.mapping:
        top.expect_key = True
        return None if top.key is None else _entry(top.path, top.key, prefixes)
    item = (*top.path, top.index)
    top.index += 1
    if item in prefixes:
        at.setdefault(item, line)
        return item
    return None


def _entry(path: Loc, key: str, prefixes: set[Loc]) -> Loc | None:
    """A mapping entry's path if it is asked about; a key written `1` or `true` is asked about as
    the value the reader made of it."""
    entry = (*path, key)
    if entry in prefixes:
        return entry
    typed = (*path, _TYPED_KEYS.get(key, key)) if key in _TYPED_KEYS else None
    if typed is None and len(key) < 20 and key.lstrip("+-").isdigit():
        typed = (*path, int(key))
    return typed if typed in prefixes else None


_TYPED_KEYS: dict[str, Any] = {
    **dict.fromkeys(("true", "True", "TRUE"), True),
    **dict.fromkeys(("false", "False", "FALSE"), False),
}


_NULL = re.compile(r"~|null|Null|NULL|")


@dataclass
class _Open:
    """A collection open in the event stream, for structure_problems."""

    keys: dict[str, str | None] | None
    """A mapping's keys so far, each with its value when a scalar (None for a list)."""
    expect_key: bool = True
    key: str | None = None
    key_line: int = 0
    duplicate: str | None = None
    """The first value of the key just read again, when it was."""


def structure_problems(path: Path, text_problem: Callable[[str], str | None] = lambda _: None) -> list[str]:
    """What the careful reader would refuse in a large file the fast reader declined, found in one
    pass over libyaml's events, with the careful reader's words: a syntax error, a duplicate key,
    an explicit tag, a null value, and a key or value `text_problem` refuses (a control character
    written as an escape). Empty when none of these is there (the careful reader then reads it,
    and says the rest)."""
    problems: list[str] = []
    stack: list[_Open] = []
    try:
        for event in _events(path.read_text(encoding="utf-8")):
            if len(problems) >= 100:
                break
            kind = type(event)
            if kind in (yaml.MappingEndEvent, yaml.SequenceEndEvent):
                stack.pop()
                continue
            if kind not in (yaml.ScalarEvent, yaml.AliasEvent, yaml.MappingStartEvent, yaml.SequenceStartEvent):
                continue
            line = event.start_mark.line + 1
            if kind is not yaml.AliasEvent and event.tag is not None:
                problems.append(
                    f"{path}:{line}: an explicit YAML tag (!name, !!type): rotator files use plain values; "
                    "quote a value to keep it text"
                )
            scalar = event.value if kind is yaml.ScalarEvent else None
            null = scalar is not None and event.implicit[0] and _NULL.fullmatch(scalar) is not None
            if stack:
                problems.extend(_judge(path, stack[-1], scalar, null, line))
            if scalar is not None and (wrong := text_problem(scalar)) is not None:
                problems.append(f"{path}:{line}: {wrong}")
            if kind is yaml.MappingStartEvent:
                stack.append(_Open(keys={}))
            elif kind is yaml.SequenceStartEvent:
                stack.append(_Open(keys=None))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problems.append(f"{path}:{1 if mark is None else mark.line + 1}: {(exc.problem or str(exc)).strip()}")
    except yaml.YAMLError:
        return []  # what libyaml's reader refuses (a control character) the careful reader's pre-check names
    return problems


def has_tag(text: str) -> bool:
    """Whether any node carries an explicit tag (or the text cannot be read to tell: True)."""
    try:
        return any(
            getattr(event, "tag", None) is not None and type(event) is not yaml.AliasEvent for event in _events(text)
        )
    except yaml.YAMLError:
        return True


def _judge(path: Path, top: _Open, scalar: str | None, null: bool, line: int) -> list[str]:
    """The problems of one node in the collection `top`, which it is a key, a value or an item of."""
    if top.keys is None:
        return [f"{path}:{line}: an empty (null) list item"] if null else []
    if top.expect_key:
        top.expect_key, top.key, top.key_line, top.duplicate = False, scalar, line, None
        if scalar is not None and scalar in top.keys:
            top.duplicate = top.keys[scalar] or ""
        return []
    top.expect_key = True
    if top.key is None:
        return []
    if top.duplicate is not None:
        # ruamel's words, so that a large file reads as a small one does
        shown = f' with value "{scalar}" (original value: "{top.duplicate}")' if scalar is not None else ""
        return [f'{path}:{top.key_line}: found duplicate key "{top.key}"{shown} (each key may appear once)']
    top.keys[top.key] = scalar
    return [f"{path}:{top.key_line}: {top.key}: null is not a value here; leave the key out"] if null else []
