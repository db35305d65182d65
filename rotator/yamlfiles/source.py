"""YAML files read so that every problem names its file and line.

ruamel.yaml's round-trip loader keeps the line of every key and refuses duplicate keys (PyYAML
silently keeps the last one). Pydantic validation errors are mapped back to the line of the key
that caused them.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from rotator.errors import InputError
from rotator.yamlfiles import lines as yamllines

MAX_DEPTH = 64
MAX_LINE = 64 * 1024
"""Longest line read (a scalar, a comment): past it ruamel's comment handling turns quadratic and a
value this long is a mistake or an attack, never a setting."""
MAX_FILE = 32 * 1024 * 1024
"""Largest file read: a fleet of 100,000 secrets is about 14 MB across its files."""
MAX_DIGITS = 4000
"""Longest run of digits: Python refuses to convert more than 4,300 to an integer (and libraries
that do convert them take quadratic time)."""

_ANYWHERE = "\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff\ufeff\ufffe\uffff"
FORBIDDEN = re.compile(f"[\x00-\x08\x0b\x0c\x0e-\x1f{_ANYWHERE}]")
"""Characters no rotator file holds: control characters (tab and line ends aside), C1 codes,
Unicode's line and paragraph separators (a line end to some readers, not to others: a key could
hide behind one), bidirectional overrides (text that displays otherwise than it reads), surrogates (an escape can
write one; no UTF-8 holds it), U+FEFF past the start, and non-characters."""
IN_VALUE = re.compile(f"[\x00-\x1f{_ANYWHERE}]")
"""What a value may not hold once escapes are read (`"\\e[31m"`); line ends and tabs only where
`multiline` allows them (rotator.yaml's commands may carry a script)."""
_IN_MULTILINE = re.compile(f"[\x00-\x08\x0b-\x1f{_ANYWHERE}]")
_DIGITS = re.compile(f"[0-9]{{{MAX_DIGITS + 1}}}")


def _line_at(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def _long_line(text: str) -> int | None:
    """Where a line longer than MAX_LINE starts. Such a line holds a whole aligned block of
    MAX_LINE / 2 characters without a line end, so only the blocks are searched (a few hundred in
    a fleet's 14 MB; a regex would try again from every character)."""
    block = MAX_LINE // 2
    for offset in range(0, len(text), block):
        if text.find("\n", offset, offset + block) == -1 and offset + block <= len(text):
            start = text.rfind("\n", 0, offset) + 1
            end = text.find("\n", offset)
            if (len(text) if end == -1 else end) - start > MAX_LINE:
                return start
    return None


_C0 = tuple(chr(c) for c in [*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F])


def _forbidden_at(text: str) -> int | None:
    # plain ASCII (a fleet's generated files) needs only the C0 look-ups, each a fast `in`
    if text.isascii() and not any(c in text for c in _C0):
        return None
    body = text.removeprefix("\ufeff")
    bad = FORBIDDEN.search(body)
    return None if bad is None else bad.start() + len(text) - len(body)


def _long_number(text: str) -> int | None:
    """Where a run of more than MAX_DIGITS digits starts; such a run holds a whole aligned block of
    MAX_DIGITS / 2 digits, so only the blocks are tested."""
    block = MAX_DIGITS // 2
    for offset in range(0, len(text) - block + 1, block):
        if text[offset : offset + block].isdigit() and (found := _DIGITS.search(text, max(0, offset - block))):
            return found.start()
    return None


def precheck(text: str) -> tuple[int, str] | None:
    """(line, problem) for what no rotator file holds, found in linear time before any parser
    sees it: forbidden characters, over-long lines or numbers, directives."""
    if (offset := _forbidden_at(text)) is not None:
        return _line_at(text, offset), f"control character U+{ord(text[offset]):04X}; rotator files hold plain text"
    if (start := _long_line(text)) is not None:
        return _line_at(text, start), f"a line longer than {MAX_LINE // 1024} KiB; refusing it unread"
    if (start := _long_number(text)) is not None:
        return _line_at(text, start), f"a number longer than {MAX_DIGITS} digits; refusing it unread"
    if "\r" in text and (lone := _LONE_CR.search(text)) is not None:
        return _line_at(text, lone.start()), "a carriage return without a line feed; save the file with \\n line ends"
    if "%" in text and (directive := _DIRECTIVE.search(text)) is not None:
        return _line_at(text, directive.end()), "a YAML directive (%YAML, %TAG): rotator files use none"
    return None


_LONE_CR = re.compile("\r(?!\n)")
_DIRECTIVE = re.compile("(?:\\A\ufeff?|\n)%")


def control_character(value: Any) -> str | None:
    """The first character rotator.yaml could not hold in a value set from the environment (a
    string, or the keys and values of JSON), or None."""
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            if (bad := _IN_MULTILINE.search(node)) is not None:
                return bad.group()
        elif isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return None


def value_problem(value: str) -> str | None:
    """What a policy file's key or value may not hold, in the careful reader's words."""
    if (bad := IN_VALUE.search(value)) is not None:
        return f"control character U+{ord(bad.group()):04X} in {brief(repr(value), 40)}"
    return None


def brief(text: str, limit: int = 80) -> str:
    """A message with every run of non-blank characters longer than `limit` cut short."""
    return re.sub(f"\\S{{{limit + 1},}}", lambda m: m.group()[: limit - 1] + "…", text)


def read_bytes(path: Path) -> bytes:
    """A file's bytes, refused unread when it is no regular file (a FIFO or /dev/zero would hold
    `validate` forever) or larger than MAX_FILE."""
    try:
        # non-blocking, so that opening a FIFO returns at once instead of waiting for a writer
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise InputError([f"{path}: cannot read: {exc.strerror}"]) from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise InputError([f"{path}: not a regular file (a pipe, a device or a directory); name a file"])
    with os.fdopen(fd, "rb") as file:
        raw = file.read(MAX_FILE + 1)
    if len(raw) > MAX_FILE:
        raise InputError([f"{path}: larger than {MAX_FILE // (1024 * 1024)} MiB; refusing it unread"])
    return raw


def load(path: Path, *, multiline: bool = False) -> Any:
    """Parse one YAML file whose top level is a mapping (or empty); raise InputError with
    `file:line: message` on any problem: not UTF-8 (with the byte's offset), syntax, duplicate
    keys, a `null` value, nesting deeper than MAX_DEPTH, or aliases that expand far beyond the
    file's size (a "billion laughs" bomb)."""
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    raw = read_bytes(path)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise InputError(
            [f"{path}:{line}: not UTF-8: byte 0x{raw[exc.start]:02x} at offset {exc.start}; save the file as UTF-8"]
        ) from None
    if (found := precheck(text)) is not None:
        raise InputError([f"{path}:{found[0]}: {found[1]}"])
    if (deep_at := too_deep(text)) is not None:
        raise InputError([f"{path}:{deep_at}: nested deeper than {MAX_DEPTH} levels"])
    if (tagged := _tag_line(yaml, text)) is not None:
        raise InputError(
            [
                f"{path}:{tagged}: an explicit YAML tag (!name, !!type): rotator files use plain values; quote a value "
                "to keep it text"
            ]
        )
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
        raise InputError([f"{path}:1: {brief(str(exc))}"]) from None
    except Exception as exc:
        # the parser's own limits and slips on hostile input (a mapping used as a key, an assertion
        # on a stray `>`): still bad input, never a traceback
        why = f"{type(exc).__name__}: {brief(str(exc))}"
        raise InputError([f"{path}:1: not a document rotator can read ({why})"]) from None
    if doc is not None and not isinstance(doc, CommentedMap):
        raise InputError([f"{path}:1: the top level must be a mapping of keys to values, not a {type(doc).__name__}"])
    _check_shape(doc, path, budget=10 * len(raw) + 10_000, multiline=multiline)
    return doc


def _tag_line(yaml: YAML, text: str) -> int | None:
    """The line of the first explicit tag. After parsing, a tag is gone or has changed what a value
    is (a tagged string read as a list of its characters); the scanner still sees where it was."""
    if "!" not in text:
        return None
    try:
        for token in yaml.scan(text):
            if type(token).__name__ == "TagToken":
                return int(token.start_mark.line) + 1
    except Exception:
        return None  # the parser says what is wrong, and where
    return None


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


def _check_shape(doc: Any, path: Path, *, budget: int, multiline: bool = False) -> None:
    """Walk the document as a consumer would see it (aliases expanded), within `budget` values."""
    problems: set[tuple[int, str]] = set()
    forbidden = _IN_MULTILINE if multiline else IN_VALUE

    def text_at(line: int, value: Any) -> None:
        if isinstance(value, str) and (bad := forbidden.search(value)) is not None:
            problems.add((line, f"control character U+{ord(bad.group()):04X} in {brief(repr(value), 40)}"))

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
                line = _key_line(node, key)
                if value is None:
                    problems.add((line, f"{key}: null is not a value here; leave the key out"))
                text_at(line, key)
                text_at(_key_line(node, key, value=True), value)
                stack.append((value, depth + 1))
        elif isinstance(node, CommentedSeq):
            for index, value in enumerate(node):
                if value is None:
                    problems.add((node.lc.item(index)[0] + 1, "an empty (null) list item"))
                text_at(node.lc.item(index)[0] + 1, value)
                stack.append((value, depth + 1))
    if problems:
        raise InputError([f"{path}:{line}: {what}" for line, what in sorted(problems)])


def _key_line(node: CommentedMap, key: Any, *, value: bool = False) -> int:
    """The line of a key (or its value). A key merged in (`<<: *base`) has no place in this
    mapping's own record: the mapping's line stands for it."""
    place = (node.lc.data or {}).get(key)
    if place is None:
        return int(node.lc.line or 0) + 1
    return int(place[2] if value else place[0]) + 1


def walk(doc: Any, loc: tuple[str | int, ...]) -> tuple[int, tuple[str | int, ...]]:
    """Follow `loc` into the document: the line of the deepest node reached, and the keys used.

    Parts the document does not have (pydantic's tagged-union names) are skipped, except a last
    part, which names a missing or unknown field. A large file the fast reader read stands here as
    a yamllines.View: its lines are found later, all at once.
    """
    if isinstance(doc, yamllines.View):
        return yamllines.walk(doc, loc)
    line = doc.lc.line + 1 if isinstance(doc, CommentedMap | CommentedSeq) and doc.lc.line is not None else 1
    node, kept = doc, []
    for index, part in enumerate(loc):
        if isinstance(node, CommentedMap) and part in node:
            line = _key_line(node, part)
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
    return walk(doc, loc)[0]


def nesting(value: Any) -> int:
    """How deep lists and mappings nest in a plain value (a JSON one from the environment)."""
    depth, level = 0, [value]
    while level:
        depth += 1
        level = [c for v in level if isinstance(v, dict | list) for c in (v.values() if isinstance(v, dict) else v)]
        if depth > MAX_DEPTH:
            break
    return depth
