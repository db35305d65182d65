"""The fast policy reader agrees with the careful one, or declines: it never reads a value differently."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from rotator.errors import InputError
from rotator.settings import config
from rotator.settings.policies import load_dir
from rotator.yamlfiles import fast as yamlfast

ROOT = Path(__file__).parents[2]
TRICKY = [
    "012",
    "0o17",
    "0x1F",
    "0X1F",
    "-0x1F",
    ".5e1",
    "1_000",
    "+12",
    "-0",
    "1e3",
    "1.5",
    ".5",
    "1.",
    ".inf",
    "-.Inf",
    ".nan",
    "1:30",
    "yes",
    "no",
    "on",
    "off",
    "y",
    "n",
    "true",
    "False",
    "TRUE",
    "null",
    "Null",
    "~",
    "",
    "2026-01-01",
    "2026-01-01T02:00:00Z",
    "90d",
    "0s",
    "=",
    "<<",
    "!!str 5",
    "!custom x",
    "'quoted'",
    '"dq"',
    "0b101",
]


def careful(text: str) -> Any:
    return plain(YAML(typ="rt").load(text))


def kinds(doc: dict[str, Any]) -> list[str]:
    """The plain type of each value (ruamel reads numbers as subclasses of int and float)."""
    order = (bool, int, float, str, type(None))
    return [next(t.__name__ for t in order if isinstance(v, t)) for v in (doc["a"], *doc["b"])]


def plain(node: Any) -> Any:
    if isinstance(node, dict):
        return {plain(k): plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [plain(v) for v in node]
    return node


@given(st.one_of(st.sampled_from(TRICKY), st.text(alphabet="0123456789oxXe._+-:yesnotruf ", max_size=8)))
@settings(max_examples=400, deadline=None)
def test_a_scalar_reads_the_same_or_the_fast_reader_declines(scalar: str) -> None:
    text = f"a: {scalar}\nb: [{scalar}]\n"
    try:
        expected = careful(text)
    except Exception:  # anything the careful reader refuses, the fast one must not accept
        with pytest.raises(yamlfast.Unsure):
            yamlfast.load(text, len(text))
        return
    try:
        fast = yamlfast.load(text, len(text))
    except yamlfast.Unsure:
        return
    assert fast == expected and kinds(fast) == kinds(expected), scalar


def test_duplicate_keys_and_nulls_send_the_file_to_the_careful_reader() -> None:
    for text in ("a: 1\na: 2\n", "a:\n", "a: [1, ~]\n", "- 1\n"):
        with pytest.raises(yamlfast.Unsure):
            yamlfast.load(text, len(text))


def test_the_example_policies_load_the_same_both_ways(tmp_path: Path) -> None:
    from rotator.settings import policies

    settings_ = config.load(ROOT / "rotator.example.yaml")
    files = sorted((ROOT / "policies").glob("*.yaml"))
    fast = policies._load_files(files, settings_, fast=True)
    slow = policies._load_files(files, settings_, fast=False)
    assert fast == slow and fast.secrets


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("policies:\n  p: {max_age: 90d}\n  p: {max_age: 30d}\n", ":3: "),
        # `-_` made ruamel's int constructor raise IndexError (found by the property above): bad
        # input, not a traceback
        ("teams:\n  x: [-_]\n", ":"),
    ],
    ids=["duplicate-key", "ruamel-crash"],
)
def test_a_broken_file_still_gets_file_and_line(tmp_path: Path, text: str, where: str) -> None:
    settings_ = config.load(ROOT / "rotator.example.yaml")
    (tmp_path / "a.yaml").write_text(text)
    with pytest.raises(InputError) as caught:
        load_dir(tmp_path, settings_)
    assert caught.value.problems[0].startswith(f"{tmp_path / 'a.yaml'}{where}")


def test_a_fleet_file_of_plain_strings_never_reaches_libyaml(monkeypatch: pytest.MonkeyPatch) -> None:
    """The Rust reader takes what a large fleet's policy files hold; it is installed wherever
    rotator's tests run, so a silent fall back to libyaml would be a defect here."""
    text = "secrets:\n" + "".join(
        f"  - name: app-{i}\n    provider: bw\n    store: {{aws: {{secret_id: fleet/app-{i}}}}}\n"
        "    policy: quarterly\n    access: [alice@example.com]\n"
        for i in range(50)
    )
    text += 'policies:\n  quarterly: {max_age: 90d, window: "Mon-Fri 02:00-04:00 UTC", jitter: 30m}\n'

    def not_libyaml(*_: object, **__: object) -> None:
        raise AssertionError("libyaml was used")

    monkeypatch.setattr(yamlfast.yaml, "load", not_libyaml)
    doc = yamlfast.load(text, len(text))
    assert len(doc["secrets"]) == 50 and doc["policies"]["quarterly"]["max_age"] == "90d"
    for typed in ("a: 12\n", "a: yes\n", 'a: "12"\n', "a: &x b\nc: *x\n"):
        with pytest.raises(yamlfast.Unsure, match="AssertionError"):  # reached libyaml
            yamlfast.load(typed, len(typed))


REFUSED = {
    "a block scalar's indicator then #": "k: >-#c\n  text\n",
    "a comment, then the value on the next line": "k: # c\n  value\n\n",
    "a key over two lines in a flow mapping": "teams: {on\n  call: [alice]}\n",
    "a key's colon on the next line": "store: {aws: {secret_id\n  : fleet/app-1}}\n",
    "the same, nested": "a: {b: {c: d}, on\n  call: {e: f}}\n",
    "a document end before the document": "...\na: b\n",
    "two byte-order marks": "\ufeff\ufeff\na: b\n",
    "keys equal in Python": "1.0: a\n1: b\n",
    # the second attack, on the fixes
    "a comment, a blank line, then the value": "k: #c\n\n  v\n\n",
    "a comment, a comment line, then a block scalar": "k: #c\n#d\n  |-\n    x\n\n",
    "a comment, then a plain value starting with -": "k: #c\n\n  -,\n\n",
    "a comment in a fleet's entry": "secrets:\n  - id: a\n    owner: # team\n\n      payments\n\n  - id: b\n",
    "quoted brackets balancing a key over two lines": "a: {b: '}', on\n  call: x, c: '{'}\n",
    "a document end and CRLF": "...\r\na: b\r\n",
}


@pytest.mark.parametrize("text", REFUSED.values(), ids=REFUSED.keys())
@pytest.mark.parametrize("large", [False, True], ids=["small", "large"])
def test_what_the_careful_reader_refuses_the_fast_one_declines(text: str, large: bool) -> None:
    """Found by an attack on the readers: each read by yaml-rs or libyaml, refused by ruamel (or
    beyond it: ruamel fails on the comment); a file the careful reader refuses must not validate."""
    from rotator.yamlfiles import source

    with pytest.raises(Exception):  # noqa: B017 (the careful reader's own error, or the pre-check's)
        if source.precheck(text) is None:
            careful(text)
        else:
            raise ValueError(source.precheck(text))
    with pytest.raises(yamlfast.Unsure):
        yamlfast.load(text, 2_000_000 if large else len(text))


def test_a_multi_line_flow_collection_the_readers_agree_on_still_reads() -> None:
    text = "a: {b: 1,\n  c: [x,\n    y]}\nd: [e]\n"
    assert yamlfast.load(text, len(text)) == careful(text) == {"a": {"b": 1, "c": ["x", "y"]}, "d": ["e"]}


def test_comments_quotes_and_brackets_a_fleet_writes_are_read_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    text = (
        "policies: # the team's own\n  q: {max_age: 90d}\n# don't touch [yet]\nsecrets:\n"
        "  - name: 'app-1'\n    # the store {aws}\n    store: {aws: {secret_id: \"fleet/app-1\"}}\n"
        "    access: [a, b]\n"
    )
    expected = careful(text)

    def not_libyaml(*_: object, **__: object) -> None:
        raise AssertionError("libyaml was used")

    monkeypatch.setattr(yamlfast.yaml, "load", not_libyaml)
    assert yamlfast.load(text, 2_000_000) == expected


@given(st.text(alphabet="[]{},:|>? \t\nab", max_size=30))
@settings(max_examples=500, deadline=None)
def test_the_indicator_search_finds_what_the_full_pattern_finds(text: str) -> None:
    # the short search serves texts without `|`, `>` and `?`: it must answer as the pattern does
    assert yamlfast._indicator_first(text) == (yamlfast._INDICATOR_FIRST.search(text) is not None)
