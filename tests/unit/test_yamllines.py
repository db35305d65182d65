"""A large policy file's problems get their lines from one pass over libyaml's events instead of a
second, careful read: the lines and messages must be the careful reader's."""

from __future__ import annotations

from pathlib import Path

import pytest

from rotator.errors import InputError
from rotator.settings import config, policies
from rotator.yamlfiles import fast as yamlfast
from rotator.yamlfiles import lines as yamllines

SETTINGS = config.Settings.model_validate(
    {
        "providers": {"bw": {"type": "brandwave", "base_url": "http://x", "grants": [{"secret_id": "prod/*"}]}},
        "hooks": {"allowed_hosts": ["api.internal"]},
    }
)
GOOD = """\
# a comment first
policies:
  q: {max_age: 90d}
  r:
    max_age: 30d
    cutover: {min_soak: 1h}
teams:
  ops: [a@example.com]
secrets:
  - name: app
    provider: bw
    store: {aws: {secret_id: prod/app}}
    policy: q
    access: [alice@example.com, team:ops]
    consumers:
      - name: api
        reload: {http: {url: "https://api.internal/reload"}}
  - {name: flow, provider: bw, store: {aws: {secret_id: prod/flow}}, policy: r}
  - name: later
    provider: bw
    store:
      aws:
        secret_id: prod/later
    policy: q
"""

VALIDATION = {
    "unknown provider": GOOD.replace(
        "provider: bw\n    store: {aws: {secret_id: prod/app}}",
        "provider: nope\n    store: {aws: {secret_id: prod/app}}",
    ),
    "unknown field in a secret": GOOD.replace(
        "    policy: q\n    access", "    policy: q\n    colour: red\n    access"
    ),
    "missing field": GOOD.replace("    provider: bw\n    store:\n      aws:", "    store:\n      aws:"),
    "unknown policy in flow style": GOOD.replace("policy: r}", "policy: nope}"),
    "bad duration": GOOD.replace("max_age: 30d", "max_age: soon"),
    "store outside the grant": GOOD.replace("secret_id: prod/later", "secret_id: dev/later"),
    "duplicate secret": GOOD.replace("name: later", "name: app"),
    "hook host not allowed": GOOD.replace("https://api.internal/reload", "https://evil.example/reload"),
    "unknown people group": GOOD.replace("team:ops", "team:nobody"),
    "several at once": GOOD.replace(
        "provider: bw\n    store:\n      aws", "provider: zz\n    store:\n      aws"
    ).replace("max_age: 30d", "max_age: soon"),
}


def _careful(path: Path) -> list[str]:
    with pytest.raises(InputError) as exc:
        policies._load_files([path], SETTINGS, fast=False)
    return exc.value.problems


@pytest.mark.parametrize("text", VALIDATION.values(), ids=VALIDATION.keys())
def test_lines_found_later_are_the_careful_readers(tmp_path: Path, text: str) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(text)
    with pytest.raises(policies._FastProblems) as exc:
        policies._load_files([path], SETTINGS, fast=True)
    assert sorted(yamllines.resolve(exc.value.problems, exc.value.lines) or []) == sorted(_careful(path))


STRUCTURE = {
    "duplicate key": (GOOD.replace("    policy: q\n    access", "    policy: q\n    policy: r\n    access"), 14),
    "explicit tag": (GOOD.replace("secret_id: prod/later", "secret_id: !x prod/later"), 23),
    "null value": (GOOD.replace("    policy: q\n    access", "    policy:\n    access"), 13),
    "null item": (GOOD.replace("[alice@example.com, team:ops]", "\n      -\n      - a"), 15),
    "syntax error": (GOOD.replace("policy: r}", "policy: [r}  # syntax"), 18),
}


@pytest.mark.parametrize(("text", "line"), STRUCTURE.values(), ids=STRUCTURE.keys())
def test_what_the_careful_reader_refuses_is_found_in_the_events_at_its_line(
    tmp_path: Path, text: str, line: int
) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(text)
    careful = _careful(path)
    found = yamllines.structure_problems(path)
    assert [p.split(":")[1] for p in found] == [p.split(":")[1] for p in careful] == [str(line)], (found, careful)
    if "syntax" not in text:  # libyaml words a syntax error its own way; the line is the same
        assert found == careful


def test_a_large_file_with_one_bad_reference_is_reported_at_its_line(tmp_path: Path) -> None:
    """Past yamllines.BIG the careful reader is not run at all (it took 200 s at 20 MB)."""
    entries = "".join(
        f"  - name: s{i}\n    provider: bw\n    store: {{aws: {{secret_id: prod/s{i}}}}}\n    policy: q\n"
        for i in range(12_000)
    )
    text = "policies:\n  q: {max_age: 90d}\nsecrets:\n" + entries
    text = text.replace("name: s11999\n    provider: bw", "name: s11999\n    provider: nope")
    (tmp_path / "p.yaml").write_text(text)
    assert (tmp_path / "p.yaml").stat().st_size > yamllines.BIG
    with pytest.raises(InputError) as exc:
        policies.load_dir(tmp_path, SETTINGS)
    line = text.splitlines().index("    provider: nope") + 1
    assert exc.value.problems == [
        f"{tmp_path / 'p.yaml'}:{line}: secret 's11999' names unknown provider 'nope' (known: bw)"
    ], exc.value.problems[:3]


def test_a_large_file_with_a_duplicate_key_is_reported_without_the_careful_reader(tmp_path: Path) -> None:
    entries = "".join(
        f"  - name: s{i}\n    provider: bw\n    store: {{aws: {{secret_id: prod/s{i}}}}}\n" for i in range(16_000)
    )
    text = "secrets:\n" + entries.replace("name: s6000\n", "name: s6000\n    name: again\n")
    (tmp_path / "p.yaml").write_text(text)
    with pytest.raises(yamlfast.Unsure):
        yamlfast.load(text, len(text))
    with pytest.raises(InputError) as exc:
        policies.load_dir(tmp_path, SETTINGS)
    line = text.splitlines().index("    name: again") + 1
    assert exc.value.problems == [
        f'{tmp_path / "p.yaml"}:{line}: found duplicate key "name" with value "again" (original value: "s6000") '
        "(each key may appear once)"
    ]


def _fleet(n: int = 16_000) -> str:
    entries = "".join(
        f"  - name: s{i}\n    provider: bw\n    store: {{aws: {{secret_id: prod/s{i}}}}}\n    policy: q\n"
        for i in range(n)
    )
    return "policies:\n  q: {max_age: 90d}\nsecrets:\n" + entries


def test_a_byte_order_mark_is_not_part_of_the_first_key(tmp_path: Path) -> None:
    text = "\ufeff# fleet\n" + _fleet()
    doc = yamlfast.load(text, len(text.encode()))
    assert "policies" in doc and len(doc["secrets"]) == 16_000


def test_a_large_file_with_a_bang_in_a_comment_is_read_fast(tmp_path: Path) -> None:
    """A "!" that is no tag (a comment, a quoted value) used to send a large file to the careful
    reader: minutes at 6 MB."""
    text = "# rotate often!\n" + _fleet().replace("name: s7\n", 'name: s7\n    access: ["hey!@example.com"]\n')
    assert len(text) > yamllines.BIG
    doc = yamlfast.load(text, len(text))
    assert doc["secrets"][7]["access"] == ["hey!@example.com"]


@pytest.mark.parametrize(
    ("fault", "fragment"),
    [
        ('    access: ["a\\x01b"]\n', "control character U+0001"),
        ('    access: ["a\\u2028b"]\n', "control character U+2028"),
        ("    access: [a\x01b]\n", "control character U+0001"),
        ("    true: x\n", "Keys should be strings"),
        ("    access: !x [a]\n", "explicit YAML tag"),
        ('    access: ["b\\tw"]\n', "control character U+0009"),
        ('    access: ["a\\ud83d\\ude00"]\n', ""),
        ("    access:\n      - |\n        two\n        lines\n", "control character U+000A"),
    ],
    ids=[
        "escaped control character",
        "escaped line separator",
        "raw control character",
        "boolean key",
        "tag",
        "escaped tab",
        "escaped surrogates",
        "block scalar",
    ],
)
def test_a_fault_in_a_large_file_is_named_at_its_line(tmp_path: Path, fault: str, fragment: str) -> None:
    text = _fleet().replace("name: s9000\n    provider: bw\n", "name: s9000\n    provider: bw\n" + fault)
    (tmp_path / "p.yaml").write_text(text)
    with pytest.raises(InputError) as exc:
        policies.load_dir(tmp_path, SETTINGS)
    line = text.splitlines().index(fault.splitlines()[0]) + 1 + (fault.count("\n") > 1)
    assert any(p.startswith(f"{tmp_path / 'p.yaml'}:{line}:") and fragment in p for p in exc.value.problems), (
        line,
        exc.value.problems[:3],
    )
