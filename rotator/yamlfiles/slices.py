"""A large file's one long top-level list (a fleet's `secrets:`) cut into slices read one by one.

Read whole, a 100,000-secret file made every entry's dicts and strings at once, and the memory they
held stayed with the process after the entries were read (about 180 MB beside 70 MB of secrets).
Read a slice at a time, each slice's entries are read and dropped before the next is parsed.

The text is cut only at line starts where a reader of the whole text is between nodes: before the
list's key (a line `<key>:` at column 0), at an item of the list (`<indent>- `), and where the list
ends (the next line at column 0). Each part is read as a document of its own — the text before
the key, each slice as `<the key's line>` + its items, the text after the list — and the caller
takes the answer only if every part reads: a quoted scalar or flow collection left open at a cut
(a `secrets:` line hidden inside a quoted value, say) makes its part fail, where a reader of the
whole text would have gone on. Files with anchors, aliases, merge keys, tags, tabs, carriage
returns or document markers are not cut, nor is one whose key is written otherwise or twice.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from rotator.yamlfiles import fast

PER_SLICE = 256 * 1024
"""Characters in one slice (about 2,000 entries of a fleet), cut at the next item after that many."""

_UNSAFE = ("&", "*", "<<", "!", "\t", "\r")
# every pattern starts with a line end rather than `^`: a search for a literal goes from one line
# end to the next, where `^` is tried at every character (0.75 s against 0.1 s over 14 MB)
_MARKER = re.compile(r"\n(?:---|\.\.\.)(?:[ \n]|$)")
_FIRST_ITEM = re.compile(r"\n( *)-[ \n]")


@dataclass(frozen=True)
class Sliced:
    text: str
    key_start: int
    """Where the key's line starts."""
    block_start: int
    """Where the key's line ends."""
    block_end: int
    """Where the list ends (the next line at column 0, or the end of the text)."""
    slices: list[tuple[int, int]]
    """Each slice's start and end: whole items, in order."""

    def before(self) -> str:
        return self.text[: self.key_start]

    def after(self) -> str:
        return self.text[self.block_end :]

    def pieces(self) -> Iterator[str]:
        """Each slice as a document of its own: the key's line and the slice's items."""
        key_line = self.text[self.key_start : self.block_start]
        for start, end in self.slices:
            yield key_line + self.text[start:end]


def load(
    text: str, size: int, key: str, *, at_least: int, per_slice: int = PER_SLICE
) -> tuple[dict[Any, Any], Iterator[Any]]:
    """The document without top-level `key`, and the items of its list one at a time (fast.load
    reads each part; it raises fast.Unsure as it would for the whole text). A large file is read
    in slices; an item is dropped once the caller took it."""
    sliced = split(text, key, at_least=at_least, per_slice=per_slice)
    if sliced is None:
        doc = fast.load(text, size) or {}
        items = doc.pop(key, None)
        if items is not None and not isinstance(items, list):
            raise fast.Unsure(f"{key} is not a list")
        return doc, _dropping(items or [])
    doc = {}
    for part in (sliced.before(), sliced.after()):
        if not _opens_a_block_mapping(part):
            # read whole, it would be one mapping with the key: `{a: 1}` or ` a: 1` before it is no such thing
            raise fast.Unsure("a part of the cut file that does not continue its top-level mapping")
        read = fast.load(part, size) or {}
        if key in read or read.keys() & doc.keys():
            raise fast.Unsure("a top-level key written twice")
        doc.update(read)
    return doc, _items(sliced, size, key)


def _items(sliced: Sliced, size: int, key: str) -> Iterator[Any]:
    for piece in sliced.pieces():
        read = fast.load(piece, size)
        if not isinstance(read, dict) or list(read) != [key] or not isinstance(read[key], list):
            raise fast.Unsure(f"a slice of {key} that is not a list")
        yield from _dropping(read.pop(key))


_CONTENT = re.compile(r"^ *[^ \n#]", re.M)
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_][^:\n]*:(?: |\n|$)")


def _opens_a_block_mapping(part: str) -> bool:
    """Nothing but blank lines and comments, or a plain key at column 0 first: the part goes on
    the top-level block mapping the list's key belongs to."""
    first = _CONTENT.search(part)
    return first is None or _PLAIN_KEY.match(part, first.start()) is not None


def _dropping(items: list[Any]) -> Iterator[Any]:
    # each raw item dropped once taken: what the caller makes of it reuses its memory
    for index, item in enumerate(items):
        items[index] = None
        yield item


def split(text: str, key: str, *, at_least: int, per_slice: int = PER_SLICE) -> Sliced | None:
    """The text cut around top-level `key`'s block list, or None where it is not cut (a small file,
    another layout, anything the cut could change)."""
    text_ = "\n" + text  # a line end before every line, the first too; offsets are one more than in text
    if len(text) < at_least or any(mark in text for mark in _UNSAFE) or _MARKER.search(text_) is not None:
        return None
    found = list(re.finditer(rf"\n{re.escape(key)}: *\n", text_))
    if len(found) != 1:
        return None
    key_start, block_start = found[0].start(), found[0].end() - 1
    first = _FIRST_ITEM.search(text_, block_start)
    # the list's first item must come first: blank lines and comments only before it
    if first is None or not _comments(text_[block_start : first.start()]):
        return None
    indent = len(first.group(1))
    block_end = _block_end(text_, first.start(), indent)
    if block_end is None:
        return None
    item = re.compile(rf"\n {{{indent}}}-[ \n]")
    bounds = [first.start()]
    while (cut := item.search(text_, bounds[-1] + per_slice, block_end)) is not None:
        bounds.append(cut.start())
    bounds.append(block_end)
    # back to offsets in text: each cut is just after a line end
    return Sliced(text, key_start, block_start, block_end, list(itertools.pairwise(bounds)))


def _comments(text: str) -> bool:
    """Blank lines and comments only."""
    return all(not line.strip() or line.lstrip().startswith("#") for line in text.split("\n"))


def _block_end(text_: str, start: int, indent: int) -> int | None:
    """Where the list ends: the first line, not blank and not a comment, indented less than its
    items (or, for items at column 0, at column 0 and not an item). None where that line is
    indented at all: the file is not the plain layout this cuts."""
    # at column 0 the list's own items are the lines that do not end it
    at_0 = r"\n(?:[^ \n#-]|-[^ \n])"
    less = re.compile(at_0 if indent == 0 else rf"\n {{0,{indent - 1}}}[^ \n#]")
    found = less.search(text_, start)
    if found is None:
        return len(text_) - 1
    return found.start() if text_[found.start() + 1] != " " else None
