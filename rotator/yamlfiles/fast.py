"""A fast first read of policy files, for a fleet of many thousands of secrets.

The careful reader (`yamlsource`, ruamel's round-trip loader) keeps every key's line, which is
what error messages need, and costs most of the time of loading a large fleet. Most loads have no
error, so policy files are first read with libyaml (C) and validated; only when something is
wrong, or when this reader is unsure, is everything read again carefully, so that every message
is exactly the careful reader's.

"Unsure" means any input on which the two readers could disagree: duplicate keys (libyaml keeps
the last), scalars YAML 1.1 and 1.2 read differently (libyaml's resolvers are replaced by YAML
1.2's core schema; integers with leading zeros, `0o`, `0b` or `_`, NaN, `=` and dates bail out),
any `!` (tags), and a document
that is not a mapping, has a null value, nests deeper than the careful reader allows, or
expands aliases beyond its budget.

Before libyaml, a file without anchors or aliases is read by yaml-rs (Rust, saphyr; where it is
installed), about fifty times faster than libyaml's constructors and without its node graph in
memory; it refuses duplicate keys and nesting past 256 levels itself. Its
answer is taken only when every key and value is a string that no YAML reader (1.1 or 1.2) would
have read as anything else, which is what a fleet's generated policy files hold; anything else
(a number, a boolean, a string that looks like one, an error) goes on to libyaml as before.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import Any

import yaml

from rotator.yamlfiles import lines as yamllines
from rotator.yamlfiles.source import IN_VALUE, MAX_DEPTH, precheck, too_deep

# yaml-rs allocates with mimalloc, which by default keeps what a parse freed for a second and
# then only as it allocates again: the daemon's one large read at start pinned ~80 MB for good
os.environ.setdefault("MIMALLOC_PURGE_DELAY", "0")

_rust_loads: Callable[[str], Any] | None
try:
    from yaml_rs import loads as _rust_loads
except ImportError:  # no wheel for this platform: libyaml alone
    _rust_loads = None


_SURROGATE = re.compile(r"\\[uU]0{0,4}[dD][89a-fA-F]")
_COMPOSE_AT_MOST = 1024 * 1024
"""Past this size a file yaml-rs refuses is not read again by libyaml (see yamllines)."""


class Unsure(Exception):
    """The fast reader declines; read the file carefully."""


_Base: Any = getattr(yaml, "CSafeLoader", None)
AVAILABLE = _Base is not None


if AVAILABLE:

    class _Loader(_Base):  # type: ignore[misc]
        yaml_implicit_resolvers: dict[str, list[tuple[str, re.Pattern[str]]]] = {}

        def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
            keys = [self.construct_object(k, deep=True) for k, _ in node.value]
            if len(keys) != len({repr(k) for k in keys}):
                raise Unsure("duplicate key")
            mapping = dict(super().construct_mapping(node, deep=deep))
            if len(mapping) != len(keys):  # `1:` and `1.0:` are two keys to YAML, one to a dict
                raise Unsure("keys equal in Python")
            return mapping

    def _resolver(tag: str, pattern: str, first: str) -> None:
        _Loader.add_implicit_resolver(tag, re.compile(pattern, re.X), list(first))

    # YAML 1.2 core schema, as ruamel reads it; ints first (a float's pattern also matches them)
    _resolver("tag:yaml.org,2002:null", r"^(?:~|null|Null|NULL|)$", "~nN")
    _Loader.add_implicit_resolver("tag:yaml.org,2002:null", re.compile(r"^$"), [""])
    _resolver("tag:yaml.org,2002:value", r"^(?:=)$", "=")  # bails (no constructor)
    _resolver("tag:yaml.org,2002:merge", r"^(?:<<)$", "<")
    _resolver("tag:yaml.org,2002:timestamp", r"^[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}", "0123456789")  # bails
    _resolver("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF")
    _resolver(
        "tag:yaml.org,2002:int",
        r"^[-+]?(?:[0-9_]+|0o[0-7_]+|0x[0-9a-fA-F_]+|0b[01_]+)$",
        "-+0123456789",
    )
    _resolver(
        "tag:yaml.org,2002:float",
        r"^(?:[-+]?(?:\.[0-9_]+|[0-9][0-9_]*(?:\.[0-9_]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
        "-+0123456789.",
    )

    def _int(loader: Any, node: Any) -> int:
        text = str(node.value)
        digits = text.lstrip("+-")
        # YAML 1.2 reads 0X1F as text and a signed hex as text or a number depending on the reader
        if "_" in text or (len(digits) > 1 and digits[0] == "0" and (digits[1] != "x" or digits != text)):
            raise Unsure("an integer the two readers may read differently")
        return int(text, 16) if digits[:2] == "0x" else int(text)

    def _float(loader: Any, node: Any) -> float:
        text = str(node.value).lower()
        # the careful reader takes .5e1 for text
        if "_" in text or "nan" in text or (text.lstrip("+-").startswith(".") and "e" in text):
            raise Unsure("a number the two readers may read differently")
        return float(yaml.SafeLoader.construct_yaml_float(loader, node))

    def _refuse(loader: Any, suffix: str, node: Any) -> Any:
        raise Unsure(f"tag !{suffix}")

    _Loader.add_constructor("tag:yaml.org,2002:int", _int)
    _Loader.add_constructor("tag:yaml.org,2002:float", _float)
    for _tag in ("timestamp", "binary", "set", "omap", "pairs"):
        _Loader.add_constructor(f"tag:yaml.org,2002:{_tag}", lambda loader, node: _refuse(loader, "a tag", node))
    _Loader.add_multi_constructor("", _refuse)


def load(text: str, size: int) -> Any:
    """The document of a policy file's text, or Unsure."""
    if not AVAILABLE:
        raise Unsure("libyaml is not available")
    large = size > _COMPOSE_AT_MOST
    # the careful reader drops a byte-order mark; yaml-rs would keep it as part of the first key
    text = text.removeprefix("\ufeff")
    if text.startswith("\ufeff") or _careful_refuses(text):
        raise Unsure("what the careful reader refuses and a fast one may read")
    # an explicit tag (or a "!" in a comment or a value): ruamel keeps tags the fast reader would
    # drop. A small file goes to the careful reader; in a large one (minutes there) a pass over
    # libyaml's events tells a tag from a "!" in text, and yaml-rs may read a file without tags
    tagged = "!" in text and (not large or yamllines.has_tag(text))
    # a tab can put in a value what the careful reader refuses there, and readers differ on tabs
    # in indentation; a NUL ends the text for libyaml and yaml-rs alike (what follows would be
    # dropped unseen)
    if tagged or "\t" in text or precheck(text) is not None:
        raise Unsure("tags, tabs, control characters, directives or sizes the careful reader judges")
    # escapes (read alike by yaml-rs and ruamel) may make control characters in a value: a small
    # file goes to the careful reader, in a large one every value read by yaml-rs is checked
    escaped = "\\" in text
    if escaped and (not large or _SURROGATE.search(text) is not None):
        # yaml-rs joins an escaped surrogate pair into one character, ruamel keeps two surrogates
        raise Unsure("escapes")
    if _deep_blocks(text):
        raise Unsure("block nesting the fast readers could overflow their stacks on")
    if _rust_loads is not None and not _may_alias(text) and not _indicator_first(text) and not _open_flow(text):
        try:
            doc = _rust_loads(text)
        except Exception:
            if large:
                # libyaml would build the whole node graph only to find the same fault (18 s and
                # 900 MB at 20 MB): declined now, the fault is found in one pass over events
                raise Unsure("yaml-rs refused a large file") from None
        else:
            if isinstance(doc, dict) and _only_plain_strings(doc, budget=10 * size + 10_000, strict=escaped):
                return doc
            if large and _has_null(doc):
                raise Unsure("a null in a large file")  # which the careful reader refuses anyway
    if escaped or "!" in text:
        raise Unsure("escapes or a '!' libyaml's constructors would read unchecked")
    if _ODD_ANCHOR.search(text) is not None:
        raise Unsure("an anchor name the readers end differently")
    # libyaml's constructors recurse: flow nesting is bounded before they see it (the Rust reader
    # bounds its own, and the plain-string walk holds its answer to MAX_DEPTH)
    if too_deep(text) is not None:
        raise Unsure("too deep")
    try:
        doc = yaml.load(text, Loader=_Loader)  # noqa: S506 (a safe loader: only plain types)
    except Unsure:
        raise
    except Exception as exc:  # a syntax error or the parser's own limits: the careful reader says where
        raise Unsure(type(exc).__name__) from None
    if doc is not None and not isinstance(doc, dict):
        raise Unsure("the top level is not a mapping")
    _check_shape(doc, budget=10 * size + 10_000)
    return doc


_BLOCK_HASH = re.compile(r"[|>][-+0-9]*#")
_DOCUMENT_END = re.compile(r"(?:^|\n)\.\.\.(?:[ \t\r\n]|$)")
# a key, a comment, blank and comment lines, then a line that is no key and no item: its value
_COMMENT_THEN_SCALAR = re.compile(
    r":[ \t]+#[^\n]*\n(?:[ \t\r]*+(?:#[^\n]*)?\n)*[ \t]*+"
    r"""(?:[{\["'|>!&*]|(?!#|-(?:[ \t\r]|$))(?:(?!: |:\r?$)[^\n])+$)""",
    re.M,
)


def _careful_refuses(text: str) -> bool:
    """Text the careful reader refuses (or cannot read) where libyaml or yaml-rs read something:
    a block scalar's indicator followed by `#` (`>-#x`), a document end (`...`) with no document
    before it, and a comment after a key whose value is on the next line (`k: # c` + `  v`: ruamel
    fails on it). Found by an attack on the readers; each is refused rather than read otherwise."""
    return (
        (("|" in text or ">" in text) and "#" in text and _BLOCK_HASH.search(text) is not None)
        or ("..." in text and _DOCUMENT_END.search(text) is not None)
        or ("#" in text and _COMMENT_THEN_SCALAR.search(text) is not None)
    )


_KEY_LINE = re.compile(r"\n[ \t]*:[ \t\n]")
_QUOTED = re.compile(r"\"(?:[^\"\\\n]|\\.)*\"|'(?:[^'\n]|'')*'")
"""A quoted value on one line (what a quote opens and does not close there stays, and counts)."""
_NOT_A_BRACKET = bytes(b for b in range(256) if b not in b"{}[]\n")


def _open_flow(text: str) -> bool:
    """A flow collection left open at a line end (brackets or braces not closed on their line), or
    a line starting with `:`. yaml-rs reads a key over two lines there (`{on\n  call: x}`,
    `{id\n  : x}`), which YAML, libyaml and the careful reader refuse: such text goes to libyaml.
    The brackets alone are kept and the pairs closed on one line taken out until none is left: a
    bracket that stays was not closed on its line (or stands in a quoted value, which costs only
    the slower reader). Bytes, so that the passes run in C (50 ms over a fleet's 14 MB)."""
    if _KEY_LINE.search(text) is not None:
        return True
    if "'" in text or '"' in text:
        # a quoted `}` would close a real `{` (`{b: '}', on` + `  call: x, c: '{'}`)
        text = _QUOTED.sub("", text)
    shape = text.encode("utf-8", "surrogatepass").translate(None, _NOT_A_BRACKET)
    while (closed := shape.replace(b"{}", b"").replace(b"[]", b"")) != shape:
        shape = closed
    return shape.count(b"\n") != len(shape)


_COMPACT = re.compile(r"(?:[-?:] +){64}")


def _deep_blocks(text: str) -> bool:
    """Whether block nesting could run deep: 128 columns of indentation, or 64 nested collections
    opened on one line (`- - - x`). yaml-rs has no bound of its own there and overflows its stack
    (a crash, not an error) at some thousands of levels; below these the nesting is at most a few
    hundred levels, and the careful reader judges the rest."""
    if text.startswith(" " * 128) or "\n" + " " * 128 in text:
        return True
    # 64 indicators and their spaces fill 128 characters of one line: a file of shorter lines (a
    # fleet's) needs no search, which tries a match at every "-" and ":" (0.3 s at 20 MB)
    return max(map(len, text.split("\n"))) >= 128 and _COMPACT.search(text) is not None


_INDICATOR_FIRST = re.compile(r"[\[{,][ \t]*[|>?:]|:[ \t]+[|>]")
"""A scalar that begins with an indicator where YAML does not let one begin a plain scalar
(`{|a: b}`, `[>a]`, `[?a]`, `x: |a` in flow): yaml-rs reads it as text, libyaml and ruamel refuse
it or read it otherwise. The pattern also finds block scalars (`key: |`), which policy values
never hold."""


_FLOW_COLON = re.compile(r"[\[{,][ \t]*+:")
"""What _INDICATOR_FIRST can find in a text without `|`, `>` or `?`, as a fleet's is: 0.04 s over
its 14 MB, where the full pattern, which tries a match at every `: `, takes 0.13 s."""


def _indicator_first(text: str) -> bool:
    if "|" in text or ">" in text or "?" in text:
        return _INDICATOR_FIRST.search(text) is not None
    return _FLOW_COLON.search(text) is not None


_ODD_ANCHOR = re.compile(r"(?:^|[\s\[{,])[&*][\w-]*[^\w\s\[\]{},-]", re.M)
"""An anchor or alias name with a character beyond letters, digits, `_` and `-` (`&a:`): libyaml
and ruamel end such a name at different characters, and read the document differently."""

_ALIASES = re.compile(r"(?:^|[\s\[{,])[&*]|<<")
"""An anchor, an alias or a merge key (or text that looks like one): left to libyaml's budget."""


def _may_alias(text: str) -> bool:
    # the regex alone took a second over a fleet's 14 MB (every blank may start a match); most
    # files hold none of the three, which `in` finds in milliseconds
    return ("&" in text or "*" in text or "<<" in text) and _ALIASES.search(text) is not None


_TYPED = re.compile(
    r"""^(?:
      [-+]?[0-9_][0-9_:]*(?:\.[0-9_]*)?(?:[eE][-+]?[0-9]+)?
    | [-+]?\.[0-9_]+(?:[eE][-+]?[0-9]+)?
    | [-+]?0[xXoObB][0-9a-fA-F_]+
    | [-+]?\.(?:inf|Inf|INF) | \.(?:nan|NaN|NAN)
    | [0-9]{4}-[0-9]{1,2}-[0-9]{1,2}(?:[Tt\s].*)?
    | ~ | null|Null|NULL | true|True|TRUE | false|False|FALSE
    | yes|Yes|YES | no|No|NO | on|On|ON | off|Off|OFF | y|Y | n|N
    | = | <<
    )?$""",
    re.X,
)
"""Every plain scalar YAML 1.1 or 1.2 could read as other than a string, and the empty one."""
_TYPED_FIRST = frozenset("0123456789+-._~=<nNtTfFyYoO")
"""The characters such a scalar can start with: most strings need no regex."""


def _typed(text: str) -> bool:
    return (not text or text[0] in _TYPED_FIRST) and _TYPED.match(text) is not None


def _broken(text: str, strict: bool = False) -> bool:
    """A line end read into a value (a block scalar, a quoted value over two lines), or with
    `strict` any character a value may not hold (an escape can write one): policy values hold
    none, and the careful reader says where."""
    if strict:
        return IN_VALUE.search(text) is not None
    return "\n" in text or "\r" in text


def _only_plain_strings(doc: dict[Any, Any], *, budget: int, strict: bool = False) -> bool:
    """Every key and value a string no reader types otherwise, within the careful reader's limits
    (a container as deep as MAX_DEPTH declines: its values would lie deeper)."""
    keys: set[str] = set()  # a fleet's thousands of entries repeat a handful of keys
    first, typed, in_value = _TYPED_FIRST, _TYPED.match, IN_VALUE.search
    stack: list[tuple[Any, int]] = [(doc, 1)]
    visited = 0
    while stack:
        node, depth = stack.pop()
        visited += 1 + len(node)
        if visited > budget or depth >= MAX_DEPTH:
            return False
        if isinstance(node, dict):
            for key in node:
                if key not in keys:
                    if not isinstance(key, str) or _typed(key) or _broken(key, strict):
                        return False
                    keys.add(key)
            children = node.values()
        else:
            children = node
        for child in children:  # scalars checked here, not pushed: most of a fleet's values
            if isinstance(child, str):
                # _typed and _broken written out: a fleet's 600,000 values made two calls each
                if (not child or child[0] in first) and typed(child) is not None:
                    return False
                if (strict and in_value(child) is not None) or "\n" in child or "\r" in child:
                    return False
            elif isinstance(child, dict | list):
                stack.append((child, depth + 1))
            else:
                return False
    return True


def _has_null(doc: Any) -> bool:
    stack = [doc]
    while stack:
        node = stack.pop()
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        for child in children:
            if child is None:
                return True
            if isinstance(child, dict | list) and len(stack) < 10_000_000:
                stack.append(child)
    return False


def _check_shape(doc: Any, *, budget: int) -> None:
    stack: list[tuple[Any, int]] = [(doc, 1)]
    visited = 0
    while stack:
        node, depth = stack.pop()
        visited += 1
        if visited > budget or depth > MAX_DEPTH:
            raise Unsure("too large or too deep")
        if isinstance(node, dict):
            children = list(node.values())
            if any(isinstance(key, str) and _broken(key) for key in node):
                raise Unsure("a line end in a key")
        elif isinstance(node, list):
            children = node
        else:
            continue
        if any(child is None or (isinstance(child, str) and _broken(child)) for child in children):
            raise Unsure("a null value or a line end in a value")
        stack.extend((child, depth + 1) for child in children)
