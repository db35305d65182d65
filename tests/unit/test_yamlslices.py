"""A large file's `secrets:` read in slices gives what the careful reader gives the whole text, or
the fast reader declines (fast.Unsure): a cut never changes what a file says."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rotator.yamlfiles import fast, slices
from tests.unit.test_yamlfast import careful


def sliced(text: str, per_slice: int = 1) -> dict[str, Any]:
    """The document as the sliced read gives it (its list put back under `secrets`)."""
    doc, items = slices.load(text, len(text), "secrets", at_least=0, per_slice=per_slice)
    entries = list(items)
    return {**doc, "secrets": entries} if entries or "secrets:" in text else doc


_COMMENT = st.sampled_from(["", "\n", "# note\n", "  # indented note\n", "    # deep note\n", "#\n"])
_SCALAR = st.sampled_from(["app", "app-1", "a/b", "x@example.com", "'quoted'", '"dq"', "a b"])


@st.composite
def _item(draw: st.DrawFn, pad: str) -> str:
    """One entry of the list at indentation `pad`, in one of the shapes a policy file may take."""
    name = draw(_SCALAR)
    shape = draw(st.integers(0, 5))
    if shape == 0:
        return f"{pad}- name: {name}\n{pad}  store: {{aws: {{secret_id: {name}}}}}\n"
    if shape == 1:  # a block list at the key's own indentation, then one indented further
        return f"{pad}- name: {name}\n{pad}  access:\n{pad}  - a\n{pad}  - b\n{pad}  more:\n{pad}    - c\n"
    if shape == 2:
        return f"{pad}-\n{pad}  name: {name}\n"
    if shape == 3:
        return f"{pad}- {name}\n"
    if shape == 4:
        return f"{pad}- - {name}\n{pad}  - nested\n"
    return f"{pad}- {{name: {name}, access: [a, b]}}\n"


_HOSTILE = st.sampled_from(
    [
        # a value spanning lines, so that a later line looks like an item or the key
        'x: "open\n',
        "x: [open,\n",
        "x: {open: 1,\n",
        "x: 'open\n",
        '  - "open\n',
        "secrets:\n",
        "  -\n",
        " stray: 1\n",
        '"]\n',
        "  x: |\n    block\n  - text\n",
        "x: >\n",
    ]
)


@st.composite
def _texts(draw: st.DrawFn) -> str:
    pad = " " * draw(st.sampled_from([0, 2, 4]))
    head = draw(
        st.sampled_from(["", "policies:\n  q: {max_age: 90d}\n", "teams:\n  ops: [a, b]\n", "# top\n", "{x: 1}\n"])
    )
    tail = draw(st.sampled_from(["", "policies:\n  r: {max_age: 30d}\n", "other: [x]\n", "# end\n", "{x: 1}\n"]))
    parts = []
    for _ in range(draw(st.integers(1, 6))):
        parts.append(draw(_COMMENT))
        parts.append(draw(_item(pad)))
        if draw(st.integers(0, 7)) == 0:
            parts.append(draw(_HOSTILE))
    key = draw(st.sampled_from(["secrets:\n", "secrets:   \n"]))
    if draw(st.integers(0, 7)) == 0:
        head += draw(_HOSTILE)
    return head + key + draw(_COMMENT) + "".join(parts) + tail


@settings(max_examples=500, deadline=None)
@given(_texts(), st.integers(1, 200))
def test_a_sliced_read_reads_what_the_careful_reader_reads_or_declines(text: str, per_slice: int) -> None:
    try:
        got = sliced(text, per_slice)
    except fast.Unsure:
        return
    expected = careful(text)
    assert got == expected


def test_a_secrets_line_hidden_in_a_quoted_value_is_not_taken_for_the_list() -> None:
    # read whole, `secrets:` and the entry under it are part of the team's member name
    for text in (
        'teams: {x: ["a\nsecrets:\n  - name: evil\n    policy: q\n"]}\n',
        "teams:\n  x: 'a\nsecrets:\n  - name: evil\n'\n",
        'policies: {a: "x\nsecrets:\n- name: evil\n"}\n',
    ):
        assert "secrets" not in careful(text)
        with pytest.raises(fast.Unsure):
            sliced(text)


@pytest.mark.parametrize(
    "text",
    [
        " stray: 1\nsecrets:\n- a\n",  # found by the property above: read alone, the first part was a mapping
        "{x: 1}\nsecrets:\n  - a\n",
        "secrets:\n  - a\n{x: 1}\n",
    ],
)
def test_a_part_that_read_whole_would_not_go_on_the_top_mapping_declines(text: str) -> None:
    with pytest.raises(Exception):  # noqa: B017 (the careful reader's own error)
        careful(text)
    with pytest.raises(fast.Unsure):
        sliced(text)


def test_an_item_hidden_in_a_quoted_value_is_not_cut_out() -> None:
    text = 'secrets:\n  - name: a\n    note: "x\n  - name: evil\n    "\n  - name: b\n'
    assert [e["name"] for e in careful(text)["secrets"]] == ["a", "b"]
    with pytest.raises(fast.Unsure):
        sliced(text)


def fleet(n: int, pad: str = "  ") -> str:
    return "policies:\n  q: {max_age: 90d}\nsecrets:\n" + "".join(
        f"{pad}- name: app-{i}\n{pad}  provider: bw\n{pad}  store: {{aws: {{secret_id: fleet/app-{i}}}}}\n"
        for i in range(n)
    )


@pytest.mark.parametrize("pad", ["", "  ", "    "])
def test_a_large_fleet_is_cut_into_slices_of_whole_items(pad: str) -> None:
    text = fleet(3000, pad) + "teams:\n  ops: [a]\n"
    cut = slices.split(text, "secrets", at_least=0, per_slice=10_000)
    assert cut is not None and len(cut.slices) > 5
    assert all(text[start:].startswith(f"{pad}- name: app-") for start, _ in cut.slices)
    assert cut.after() == "teams:\n  ops: [a]\n"
    assert sliced(text, 10_000) == fast.load(text, len(text))


@pytest.mark.parametrize(
    "text",
    [
        fleet(3) + "x: &a 1\n",  # anchors and aliases
        fleet(3) + "x: !tag 1\n",
        fleet(3).replace("  - name: app-1", "\t- name: app-1"),
        fleet(3) + "---\nx: 1\n",
        fleet(3) + "secrets:\n  - name: again\n",  # the key twice
        "secrets: [a, b]\n",  # not a block list
        "secrets: # the fleet\n  - a\n",  # the key's line holds more than the key
        "secrets:\n  x: 1\n  - a\n",  # something before the first item
        "secrets:\n    - a\n  - b\n",  # an item indented less than the first
        fleet(3).replace("\n", "\r\n"),
    ],
)
def test_a_layout_the_cut_could_change_is_read_whole(text: str) -> None:
    assert slices.split(text, "secrets", at_least=0) is None


def test_a_small_file_is_read_whole() -> None:
    text = fleet(10)
    assert slices.split(text, "secrets", at_least=len(text) + 1) is None
    assert slices.split(text, "secrets", at_least=len(text)) is not None
