"""Every malformed rotator.yaml or policy file found by the generated run of issue 10: each one is
refused with `file:line` (or the environment variable's name) — no traceback, no hang, nothing run."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from rotator.errors import InputError
from rotator.settings import config, policies

SETTINGS = config.Settings.model_validate(
    {"providers": {"bw": {"type": "brandwave", "base_url": "http://x", "grants": [{"secret_id": "*"}]}}}
)
POLICY = """\
policies:
  q:
    max_age: 90d
    window: "Mon-Fri 02:00-05:00 UTC"
secrets:
  - name: app
    provider: bw
    store: {aws: {secret_id: prod/app}}
    policy: q
    access: [alice@example.com]
"""
BOMB = (
    'a: &a ["x","x","x","x","x","x","x","x","x"]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n'
    "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n"
    "f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\ng: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\nh: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]\n"
    "i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]\n"
)
DEEP = "x: " + "[" * 5000 + "]" * 5000 + "\n"

POLICY_CASES: list[tuple[str, str | bytes, int, str]] = [
    ("huge duration", POLICY.replace("max_age: 90d", 'max_age: "999999999999w"'), 3, "at most 3650d"),
    ("41-digit integer", POLICY.replace("90d", "1" * 41), 3, "bare number"),
    ("float overflow", POLICY.replace("90d", "1.0e+400"), 3, "bare number"),
    ("bare number", POLICY.replace("90d", "90"), 3, "bare number"),
    ("negative number", POLICY.replace("90d", "-90"), 3, "bare number"),
    ("negative duration", POLICY.replace("90d", "-90d"), 3, "bad duration"),
    ("zero max_age", POLICY.replace("90d", "0s"), 3, "longer than 0s"),
    ("full-width digits", POLICY.replace("90d", '"\uff19\uff10d"'), 3, "bad duration"),
    ("explicit null", POLICY.replace("90d", "null"), 3, "null is not a value"),
    ("zero-length window", POLICY.replace("02:00-05:00", "02:00-02:00"), 4, "never open"),
    ("empty secret_id", POLICY.replace("secret_id: prod/app", "secret_id: ''"), 8, "not an AWS secret name"),
    ("empty name", POLICY.replace("name: app", "name: ''"), 6, "name"),
    ("unknown team", POLICY.replace("[alice@example.com]", "[team:nosuch]"), 10, "unknown team 'team:nosuch'"),
    (
        "consumer URL not a url",
        POLICY + "    consumers: [{name: api, reload: {http: {url: 'not a url'}}}]\n",
        11,
        "not an http(s) URL",
    ),
    (
        "two secrets, one location",
        POLICY + "  - {name: app2, provider: bw, store: {aws: {secret_id: prod/app}}, policy: q}\n",
        11,
        "one store location holds one secret",
    ),
    ("non-UTF-8 byte", POLICY.encode().replace(b"alice", b"al\xffce"), 10, "not UTF-8: byte 0xff at offset"),
    ("5000-deep nesting", DEEP, 1, "nested"),
    ("alias bomb", BOMB, 1, "alias bomb"),
    ("top level is a list", "- a\n- b\n", 1, "top level must be a mapping"),
    ("a mapping as a key (found by the fuzzer)", "log: {}\n?\n  bw:\n    type: x\n", 1, ""),
]


@pytest.mark.parametrize(("text", "line", "fragment"), [c[1:] for c in POLICY_CASES], ids=[c[0] for c in POLICY_CASES])
def test_bad_policy_files_are_refused_with_file_and_line(
    tmp_path: Path, text: str | bytes, line: int, fragment: str
) -> None:
    path = tmp_path / "p.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(InputError) as exc:
        policies.load_dir(tmp_path, SETTINGS)
    assert any(p.startswith(f"{path}:{line}:") and fragment in p for p in exc.value.problems), exc.value.problems


CONFIG_CASES: list[tuple[str, str | bytes, int, str]] = [
    ("huge lease_ttl", "engine:\n  lease_ttl: 999999999999999999999999999s\n", 2, "bad duration"),
    ("bare tick", "daemon:\n  tick: 5\n", 2, "bare number"),
    ("zero tick", "daemon:\n  tick: 0s\n", 2, "longer than 0s"),
    ("unknown log level", "log:\n  level: verbose\n", 2, "log.level"),
    ("top level is a list", "- state\n- log\n", 1, "top level must be a mapping"),
    ("alias bomb", BOMB, 1, "alias bomb"),
    ("5000-deep nesting", DEEP, 1, "nested"),
    ("non-UTF-8 byte", b"log:\n  level: \xe9\n", 2, "not UTF-8: byte 0xe9 at offset 14"),
    ("null", "state:\n  url: null\n", 2, "null is not a value"),
]


@pytest.mark.parametrize(("text", "line", "fragment"), [c[1:] for c in CONFIG_CASES], ids=[c[0] for c in CONFIG_CASES])
def test_bad_config_is_refused_with_file_and_line(tmp_path: Path, text: str | bytes, line: int, fragment: str) -> None:
    path = tmp_path / "rotator.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(InputError) as exc:
        config.load(path, environ={})
    assert any(p.startswith(f"{path}:{line}:") and fragment in p for p in exc.value.problems), exc.value.problems


def test_an_environment_override_is_blamed_on_its_variable(tmp_path: Path) -> None:
    """ROTATOR_DAEMON__TICK=banana names the variable, not the file's line that says `tick: 2s`."""
    path = tmp_path / "rotator.yaml"
    path.write_text("daemon:\n  tick: 2s\n")
    with pytest.raises(InputError) as exc:
        config.load(path, environ={"ROTATOR_DAEMON__TICK": "banana"})
    assert exc.value.problems == [
        "environment variable ROTATOR_DAEMON__TICK: daemon.tick: bad duration 'banana': write a number and a unit "
        "(ms, s, m, h, d, w), e.g. 90d or 1h30m"
    ]


@pytest.mark.parametrize(("case", "why"), [("alias bomb", "alias bomb"), ("5000-deep nesting", "deep")])
def test_hostile_config_is_refused_by_the_command(tmp_path: Path, case: str, why: str) -> None:
    """The command exits 2 with the line and the reason, and no traceback. What keeps it quick is a
    count, not a clock: the loader stops after a budget of values (an expanded bomb would be a
    billion) and at a depth; so the test asserts that refusal, which only those bounds give, and
    never how long the process took (a loaded machine starts Python slowly)."""
    text = {"alias bomb": BOMB, "5000-deep nesting": DEEP}[case]
    path = tmp_path / "rotator.yaml"
    path.write_text(text)
    result = subprocess.run(
        [sys.executable, "-m", "rotator", "--config", str(path), "validate", "--offline"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ},
    )
    assert result.returncode == 2 and f"{path}:1:" in result.stderr and "Traceback" not in result.stderr
    assert why in result.stderr, result.stderr
    if case == "alias bomb":  # the budget grows with the file, not with what its aliases expand to
        budget = re.search(r"more than (\d+) values", result.stderr)
        assert budget is not None and int(budget.group(1)) <= 10 * len(text.encode()) + 10_000
