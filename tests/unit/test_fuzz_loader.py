"""A fuzzed loader: valid rotator.yaml and policy files, mutated at random, are either accepted or
refused with `file:line` problems — never a traceback, never slow, never a memory blow-up.

`make test` runs a few hundred cases; `make fuzz` runs ROTATOR_FUZZ_EXAMPLES (10,000) and prints
the figures (cases, slowest, peak memory)."""

from __future__ import annotations

import os
import re
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rotator.errors import InputError
from rotator.settings import config, policies
from rotator.yamlfiles import fast as yamlfast
from rotator.yamlfiles import source as yamlsource

EXAMPLES = int(os.environ.get("ROTATOR_FUZZ_EXAMPLES", "150"))
CONFIG = """\
state: {url: "sqlite:///x.db", auto_upgrade: false}
policies_dir: policies
log: {level: info, format: json}
providers:
  bw:
    type: brandwave
    base_url: https://api.gobrandwave.com
    admin_token: {env: BW_TOKEN}
    timeout: 10s
    grants: [{store: aws, secret_id: "prod/*"}, {store: vault, path: "team/*"}]
  bo: {type: boltly, email: a@example.com, password: {file: /run/pw}, grants: [{secret_id: "prod/*"}]}
  tb: {type: texting-blue, grants: [{secret_id: "prod/*"}]}
stores:
  aws: {type: aws, region: eu-central-1}
  vault: {type: vault, url: "https://vault:8200", auth: {token: {env: VAULT_TOKEN}}}
engine: {probe_deadline: 2m, verify_deadline: 10m, lease_ttl: 2m, retry_base: 2s}
daemon: {listen: "127.0.0.1:9464", tick: 5s, workers: 4}
notifications:
  - {url: "https://hooks.example.com/x", format: json, events: [failed, held]}
hooks:
  allowed_hosts: ["*.internal"]
  commands: {reload: {command: [/usr/bin/true]}}
"""
POLICY = """\
policies:
  quarterly:
    max_age: 90d
    window: "Mon-Fri 02:00-05:00 Europe/Berlin"
    jitter: 2h
    notify_before: 7d
    cutover: {min_soak: 1h, require: [consumers, old_key_idle], max_wait: 48h, on_timeout: hold}
teams:
  support: [bob@example.com]
secrets:
  - name: app
    provider: bw
    store: {aws: {secret_id: prod/app}}
    policy: quarterly
    access: [alice@example.com, team:support]
    consumers:
      - name: api
        reload: {http: {method: POST, url: "https://api.internal/reload", headers: {X-A: b}}}
        confirm: {command: reload}
  - {name: vaulted, provider: bw, store: {vault: {path: team/x, mount: secret}}, policy: incident}
"""

SCALARS = st.sampled_from(
    [
        "",
        "0",
        "-1",
        "90",
        "1e400",
        "99999999999999999999w",
        "null",
        "~",
        "true",
        "[]",
        "{}",
        "'",
        '"',
        "&a",
        "*a",
        "!!binary AA==",
        "\\uff19\\uff10d",
        "0s",
        "-5m",
        "1h30m",
        "..",
        "../../etc",
        "%2e",
        "\\x00",
        "[[[[[[[[]]]]]]]]",
        "&a [*a]",
        "? x",
        "- x",
        ": x",
        "#",
        "|",
        ">",
        "\t",
        "é",
        "\x85",
        # the shapes of issue 29's seeds: tags, NUL and control characters, directives, huge scalars
        '!x "*.apps.internal"',
        "!env SCOPES",
        '!!python/object/apply:os.system ["id"]',
        "!!omap [{level: loud}]",
        "!!str 5",
        "\x00",
        '"a\\0b"',
        '"\\e[31m"',
        "\x1b[31m",
        "\u202e",
        "\ufffe",
        "%YAML 9.9",
        "9" * 5000,
        "x" * 70000,
        "http://[::1:9",
        "127.0.0.1:99999",
        "nonsense://",
        "sqlite:////nonexistent/dir/x.db",
    ]
)
PROBLEM = re.compile(r"^(?:.+?:\d+: |environment variable ROTATOR_\w+: ).+", re.DOTALL)


@st.composite
def mutated(draw: st.DrawFn, text: str) -> str:
    lines = text.splitlines()
    for _ in range(draw(st.integers(1, 4))):
        index = draw(st.integers(0, len(lines) - 1))
        line = lines[index]
        kind = draw(st.sampled_from(["value", "insert", "delete", "duplicate", "indent", "chars", "swap"]))
        if kind == "value" and ":" in line:
            key = line.split(":", 1)[0]
            lines[index] = f"{key}: {draw(SCALARS)}"
        elif kind == "insert":
            at = draw(st.integers(0, len(line)))
            lines[index] = line[:at] + draw(st.one_of(SCALARS, st.text(max_size=8))) + line[at:]
        elif kind == "delete" and line:
            at = draw(st.integers(0, len(line) - 1))
            lines[index] = line[:at] + line[at + draw(st.integers(1, 10)) :]
        elif kind == "duplicate":
            lines.insert(index, line)
        elif kind == "indent":
            lines[index] = " " * draw(st.integers(0, 7)) + line.lstrip()
        elif kind == "chars":
            lines[index] = draw(st.text(min_size=0, max_size=30))
        elif kind == "swap":
            other = draw(st.integers(0, len(lines) - 1))
            lines[index], lines[other] = lines[other], lines[index]
    return "\n".join(lines) + "\n"


class Stats:
    def __init__(self) -> None:
        self.cases = 0
        self.accepted = 0
        self.slowest = 0.0
        self.peak = 0


@pytest.fixture(scope="module")
def stats() -> Iterator[Stats]:
    figures = Stats()
    yield figures
    print(
        f"\nfuzz: {figures.cases} cases, {figures.accepted} accepted, {figures.cases - figures.accepted} refused "
        f"with file:line, 0 tracebacks; slowest {figures.slowest * 1000:.0f} ms of CPU (traced); "
        f"peak traced memory {figures.peak / 1e6:.1f} MB"
    )


def _case(stats: Stats, load: object) -> None:
    tracemalloc.start()
    # CPU time, not wall time: a pathological input costs CPU; a busy shared machine only costs wall time
    started = time.process_time()
    try:
        load()  # type: ignore[operator]
        stats.accepted += 1
    except InputError as exc:
        for problem in exc.problems:
            assert PROBLEM.match(problem), problem
    finally:
        elapsed = time.process_time() - started
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        stats.cases += 1
        stats.slowest = max(stats.slowest, elapsed)
        stats.peak = max(stats.peak, peak)
    assert elapsed < 2.0 and peak < 200e6, (elapsed, peak)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=mutated(CONFIG))
def test_a_mutated_rotator_yaml_is_loaded_or_refused_with_its_line(tmp_path: Path, stats: Stats, text: str) -> None:
    path = tmp_path / "rotator.yaml"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    _case(stats, lambda: config.load(path, environ={}))


SETTINGS = config.Settings.model_validate(
    {
        "providers": {"bw": {"type": "brandwave", "grants": [{"secret_id": "prod/*"}, {"path": "team/*"}]}},
        "stores": {"aws": {"type": "aws"}, "vault": {"type": "vault"}},
        "hooks": {"allowed_hosts": ["*.internal"], "commands": {"reload": {"command": ["/usr/bin/true"]}}},
    }
)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=mutated(POLICY))
def test_a_mutated_policy_file_is_loaded_or_refused_with_its_line(tmp_path: Path, stats: Stats, text: str) -> None:
    folder = tmp_path / "p"
    folder.mkdir(exist_ok=True)
    (folder / "main.yaml").write_bytes(text.encode("utf-8", "surrogatepass"))
    _case(stats, lambda: policies.load_dir(folder, SETTINGS))


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=mutated(POLICY))
def test_the_fast_reader_accepts_only_what_the_careful_one_reads_alike(tmp_path: Path, text: str) -> None:
    """Whatever the fast reader accepts, the careful reader accepts too, as the same data: the fast
    path can never let through what `validate` with line numbers would refuse."""
    try:
        fast = yamlfast.load(text, len(text.encode("utf-8", "surrogatepass")))
    except yamlfast.Unsure:
        return
    path = tmp_path / "same.yaml"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    assert config._plain(yamlsource.load(path)) == fast


OVERRIDABLE = st.sampled_from(
    [
        "ROTATOR_PROVIDERS__BW__TIMEOUT",
        "ROTATOR_PROVIDERS__BW__ADMIN_TOKEN",
        "ROTATOR_PROVIDERS__BW__TYPE",
        "ROTATOR_PROVIDERS__BW__BASE_URL",
        "ROTATOR_PROVIDERS__BO__MAX_CONCURRENT",
        "ROTATOR_STORES__AWS__TIMEOUT",
        "ROTATOR_STORES__VAULT__URL",
        "ROTATOR_STATE__URL",
        "ROTATOR_DAEMON__LISTEN",
        "ROTATOR_DAEMON__WORKERS",
        "ROTATOR_ENGINE__LEASE_TTL",
        "ROTATOR_LOG__LEVEL",
        "ROTATOR_HOOKS__ALLOWED_HOSTS",
    ]
)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(variable=OVERRIDABLE, value=st.one_of(SCALARS, st.text(max_size=12)))
def test_an_override_is_loaded_or_refused_naming_its_variable(tmp_path: Path, variable: str, value: str) -> None:
    path = tmp_path / "rotator.yaml"
    path.write_text(CONFIG)
    try:
        config.load(path, environ={variable: value})
    except InputError as exc:
        assert all(p.startswith(f"environment variable {variable}:") for p in exc.problems), exc.problems


def test_the_seeds_themselves_load(tmp_path: Path) -> None:
    """The fuzzer mutates valid files: both seeds load cleanly as they are."""
    path = tmp_path / "rotator.yaml"
    path.write_text(CONFIG)
    config.load(path, environ={})
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "main.yaml").write_text(POLICY)
    assert set(policies.load_dir(tmp_path / "p", SETTINGS).secrets) == {"app", "vaulted"}
