"""Inputs a structural fuzzer found at the edges of what `validate` judged: tags, NUL and control
characters, directives, values a later command needs (state URL, listen address, URLs), and
environment overrides. Each is refused at `validate` with file:line (or the variable), and what
`validate` accepts never makes another command print a traceback."""

from __future__ import annotations

import os
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
  q: {max_age: 90d}
secrets:
  - name: app
    provider: bw
    store: {aws: {secret_id: prod/app}}
    policy: q
    access: [alice@example.com]
    permissions: [messages:send]
  - name: later
    provider: bw
    store: {aws: {secret_id: prod/later}}
    policy: q
"""


def _policy_problems(tmp_path: Path, text: str | bytes) -> list[str]:
    path = tmp_path / "p.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(InputError) as exc:
        policies.load_dir(tmp_path, SETTINGS)
    return exc.value.problems


POLICY_CASES: list[tuple[str, str | bytes, int, str]] = [
    ("tag on a list field", POLICY.replace("[messages:send]", "!env SCOPES"), 9, "tag"),
    ("python tag", POLICY.replace("[messages:send]", '!!python/object/apply:os.system ["id"]'), 9, "tag"),
    ("tag on a mapping", POLICY.replace("{aws: {secret_id: prod/app}}", "!x {aws: {secret_id: prod/app}}"), 6, "tag"),
    ("core tag", POLICY.replace("[messages:send]", "!!seq [a]"), 9, "tag"),
    ("omap", POLICY.replace("q: {max_age: 90d}", "q: !!omap [{max_age: 90d}]"), 2, "tag"),
    ("NUL in a value", POLICY.replace("prod/app", '"prod/a\\0pp"'), 6, "control character"),
    ("raw NUL ends nothing", POLICY.encode().replace(b"  - name: later", b"\x00 - name: later"), 10, "U+0000"),
    ("escape sequence", POLICY.replace("alice@example.com", '"\\e[31malice"'), 8, "control character"),
    ("C1 code", POLICY.replace("alice@example.com", '"\\x9balice"'), 8, "control character"),
    ("U+FFFE", POLICY.replace("messages:send", '"\\uFFFEsend"'), 9, "control character"),
    ("bidi override", POLICY.replace("alice@example.com", '"\\u202Eecila"'), 8, "control character"),
    ("raw escape byte", POLICY.replace("alice@example.com", "al\x1bice"), 8, "U+001B"),
    ("newline in a name", POLICY.replace("messages:send", '"a\\nb"'), 9, "control character"),
    ("YAML directive", "%YAML 9.9\n---\n" + POLICY, 1, "directive"),
    ("TAG directive", "%TAG ! tag:example.com,2000:\n---\n" + POLICY, 1, "directive"),
    ("block scalar", POLICY.replace("[messages:send]", "\n      - |\n        send\n        admin"), 10, "U+000A"),
    ("folded scalar", POLICY.replace("[alice@example.com]", "\n      - >-\n        a@\n\n        b.com"), 9, "U+000A"),
    ("quoted over two lines", POLICY.replace("alice@example.com", '"alice\n\n      @example.com"'), 8, "U+000A"),
    ("line separator", POLICY.replace("alice@example.com]", "alice@example.com]\u2028    owner: x"), 8, "U+2028"),
    ("paragraph separator", POLICY.replace("messages:send", "messages:send\u2029"), 9, "U+2029"),
    ("indicator first in a flow key", POLICY.replace("{aws: {secret_id", "{|aws: {secret_id"), 6, "cannot start"),
    ("indicator first in a flow item", POLICY.replace("[messages:send]", "[>messages]"), 9, "cannot start"),
    ("indicator first in a flow value", POLICY.replace("{secret_id: prod/app}", "{secret_id: |prod}"), 6, ""),
    ("anchor name with a colon", "&a" + POLICY, 3, "document start"),
    ("escaped line separator", POLICY.replace("alice@example.com", '"alice\\u2028"'), 8, "U+2028"),
]


@pytest.mark.parametrize(("text", "line", "fragment"), [c[1:] for c in POLICY_CASES], ids=[c[0] for c in POLICY_CASES])
def test_a_policy_file_is_refused_at_the_offending_line(
    tmp_path: Path, text: str | bytes, line: int, fragment: str
) -> None:
    problems = _policy_problems(tmp_path, text)
    assert any(p.startswith(f"{tmp_path / 'p.yaml'}:{line}:") and fragment in p for p in problems), problems


def test_the_fast_reader_never_accepts_what_the_careful_one_refuses(tmp_path: Path) -> None:
    """Both readers on every case above: the fast one hands each file over rather than accept it."""
    from rotator.yamlfiles import fast as yamlfast

    for _, text, _, _ in POLICY_CASES:
        raw = text if isinstance(text, bytes) else text.encode()
        with pytest.raises(yamlfast.Unsure):
            yamlfast.load(raw.decode("utf-8"), len(raw))


@pytest.mark.parametrize(
    "text",
    [
        "secrets:\n  " + "- " * 12000 + "x\n",
        "secrets:\n  " + "? " * 30000 + "x\n",
        "secrets:\n" + "".join(" " * (i + 1) + f"k{i}:\n" for i in range(400)) + " " * 401 + "v\n",
    ],
    ids=["compact sequences", "compact keys", "indentation"],
)
def test_deep_block_nesting_is_refused_not_a_crash(tmp_path: Path, text: str) -> None:
    """yaml-rs has no bound on block nesting and overflowed its stack (the process died) at some
    thousands of `- `; run in a child so that a crash fails the test instead of ending it."""
    (tmp_path / "p.yaml").write_text(text)
    program = (
        "import sys; from pathlib import Path; from rotator.settings import config, policies\n"
        "from rotator.errors import InputError\n"
        "s = config.Settings.model_validate({})\n"
        "try: policies.load_dir(Path(sys.argv[1]), s)\n"
        "except InputError as e: print(e.problems[0]); sys.exit(2)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", program, str(tmp_path)], capture_output=True, text=True, check=False, timeout=120
    )
    assert result.returncode == 2 and "nested" in result.stdout, (result.returncode, result.stderr[-500:])


def _config_problems(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> list[str]:
    path = tmp_path / "rotator.yaml"
    path.write_text(text)
    with pytest.raises(InputError) as exc:
        config.load(path, environ=environ or {})
    return exc.value.problems


CONFIG_CASES: list[tuple[str, str, int, str]] = [
    ("tag on allowed_hosts", 'hooks:\n  allowed_hosts: !x "*.apps.internal"\n', 2, "tag"),
    ("omap log", "log: !!omap [{level: loud}]\n", 1, "tag"),
    ("nonsense state url", 'state:\n  url: "nonsense://"\n', 2, "state.url"),
    ("garbage state url", "state:\n  url: garbage\n", 2, "state.url"),
    ("missing driver", 'state:\n  url: "mysql://u@h/db"\n', 2, "driver"),
    ("missing SQLite directory", 'state:\n  url: "sqlite:////nonexistent/dir/x.db"\n', 2, "/nonexistent/dir"),
    ("SQLite URL at a device", 'state:\n  url: "sqlite:////dev/null"\n', 2, "not a regular file"),
    ("SQLite URL at a directory", 'state:\n  url: "sqlite:////tmp"\n', 2, "not a regular file"),
    ("SQLite timeout not a number", 'state:\n  url: "sqlite:////tmp/x.db?timeout=abc"\n', 2, "query arguments"),
    ("SQLite thread check", 'state:\n  url: "sqlite:////tmp/x.db?check_same_thread=banana"\n', 2, "query arguments"),
    ("PostgreSQL unknown option", 'state:\n  url: "postgresql+psycopg://u@h/db?bogus=1"\n', 2, "'bogus'"),
    ("PostgreSQL port out of range", 'state:\n  url: "postgresql+psycopg://u@h:99999/db"\n', 2, "port"),
    ("listen port out of range", 'daemon:\n  listen: "127.0.0.1:99999"\n', 2, "port"),
    ("listen host not an address", 'daemon:\n  listen: "999.1.1.1:99"\n', 2, "daemon.listen"),
    ("listen garbage", "daemon:\n  listen: garbage\n", 2, "daemon.listen"),
    ("listen empty", 'daemon:\n  listen: ""\n', 2, "daemon.listen"),
    ("listen without port", 'daemon:\n  listen: "127.0.0.1"\n', 2, "daemon.listen"),
    ("listen port in other digits", 'daemon:\n  listen: "127.0.0.1:\u0669\u0660\u0660\u0660"\n', 2, "daemon.listen"),
    ("blank in a host", 'providers:\n  bw:\n    type: brandwave\n    base_url: "https://ex ample.com"\n', 4, "host"),
    ("empty label in a host", "stores:\n  v:\n    type: vault\n    url: https://a..b:8200\n", 4, "host"),
    ("label over 63", "stores:\n  aws:\n    type: aws\n    endpoint_url: https://" + "a" * 64 + ".com\n", 4, "host"),
    ("allowed host with a blank", "hooks:\n  allowed_hosts:\n    - a.internal\n    - a b\n", 4, "host pattern"),
    ("allowed host with a scheme", 'hooks:\n  allowed_hosts: ["https://a.internal"]\n', 2, "host pattern"),
    (
        "huge max_concurrent",
        "providers:\n  bw:\n    type: brandwave\n    base_url: https://x.com\n    max_concurrent: " + "9" * 20 + "\n",
        5,
        "max_concurrent",
    ),
    ("empty policies_dir", 'policies_dir: ""\n', 1, "policies_dir"),
    ("AWS region any text", "stores:\n  aws:\n    type: aws\n    region: US East 1\n", 4, "region"),
    ("Vault namespace", 'stores:\n  v:\n    type: vault\n    namespace: "a/../b"\n', 4, "namespace"),
    (
        "Vault approle mount",
        "stores:\n  v:\n    type: vault\n    auth:\n      approle:\n        role_id: r\n"
        "        secret_id: {env: S}\n        mount: 'a b'\n",
        8,
        "approle mount",
    ),
    (
        "bad IPv6 base_url",
        'providers:\n  bw:\n    type: brandwave\n    base_url: "http://[::1:9"\n',
        4,
        "base_url",
    ),
    ("bad IPv6 endpoint_url", 'stores:\n  aws:\n    type: aws\n    endpoint_url: "http://[::1:9"\n', 4, "endpoint_url"),
    ("bad IPv6 vault url", 'stores:\n  v:\n    type: vault\n    url: "http://[::1:9"\n', 4, "url"),
    ("bad port in base_url", 'providers:\n  bw:\n    type: brandwave\n    base_url: "http://h:99999"\n', 4, "base_url"),
    ("control character in config", "log:\n  level: \x00info\n", 2, "U+0000"),
    ("parser assertion", "\n\n> #", 1, "not a document"),
    ("parser not implemented", "log: #\n info\n\n", 1, "not a document"),
    ("lone carriage return", "log: #\n info\n\r", 3, "carriage return"),
    ("directive after a BOM", "\ufeff%YAML 1.1\n---\nlog: {level: info}\n", 1, "directive"),
    ("directive after a lone CR", "# c\r%YAML 1.1\r---\rlog: {level: info}\r", 1, "carriage return"),
    ("in-memory state", 'state:\n  url: "sqlite:///:memory:"\n', 2, "in-memory"),
    ("state without a database", 'state:\n  url: "sqlite://"\n', 2, "in-memory"),
    ("PostgreSQL host", 'state:\n  url: "postgresql+psycopg://u:pw@bad_host!/db"\n', 2, "host"),
    ("PostgreSQL sslmode", 'state:\n  url: "postgresql+psycopg://u@h/db?sslmode=bogus"\n', 2, "sslmode"),
    ("notification port", 'notifications:\n  - url: "https://hooks.example.com:99999/x"\n', 2, "notification url"),
    ("notification host", 'notifications:\n  - url: "https://bad_host!/x"\n', 2, "notification url"),
    ("allowed host port", 'hooks:\n  allowed_hosts: ["api.internal:99999"]\n', 2, "host pattern"),
    ("port 0", 'providers:\n  bw:\n    type: brandwave\n    base_url: "https://x.com:0"\n', 4, "port 0"),
    ("compact nesting", "teams:\n  t:\n    " + "- " * 12000 + "x\n", 1, "nested"),
    ("line separator in config", "log:\n  level: info\u2028  x: 1\n", 2, "U+2028"),
]


@pytest.mark.parametrize(("text", "line", "fragment"), [c[1:] for c in CONFIG_CASES], ids=[c[0] for c in CONFIG_CASES])
def test_rotator_yaml_is_refused_at_the_offending_line(tmp_path: Path, text: str, line: int, fragment: str) -> None:
    problems = _config_problems(tmp_path, text)
    assert any(p.startswith(f"{tmp_path / 'rotator.yaml'}:{line}:") and fragment in p for p in problems), problems


@pytest.mark.parametrize("listen", ["127.0.0.1:9464", "[::1]:9464", "localhost:0", "0.0.0.0:80"])
def test_good_listen_addresses_pass(tmp_path: Path, listen: str) -> None:
    path = tmp_path / "rotator.yaml"
    path.write_text(f'daemon:\n  listen: "{listen}"\n')
    assert config.load(path, environ={}).daemon.listen == listen


BW = "providers:\n  bw:\n    type: brandwave\n    base_url: https://x\n    admin_token: {env: T}\n"


@pytest.mark.parametrize(
    ("variable", "value", "text"),
    [
        ("ROTATOR_PROVIDERS__BW__TIMEOUT", "abc", BW),
        ("ROTATOR_PROVIDERS__BW__ADMIN_TOKEN", "abc", BW),
        ("ROTATOR_PROVIDERS__BW__TYPE", "nosuch", BW),
        ("ROTATOR_PROVIDERS__BW__MAX_CONCURRENT", "many", BW),
        ("ROTATOR_STORES__AWS__TIMEOUT", "abc", "stores:\n  aws: {type: aws}\n"),
        ("ROTATOR_STATE__URL", "garbage", ""),
        ("ROTATOR_DAEMON__LISTEN", "127.0.0.1:99999", ""),
        ("ROTATOR_PROVIDERS__BW__BASE_URL", "http://[::1:9", BW),
        ("ROTATOR_DAEMON__LISTEN__X", "1", ""),
        ("ROTATOR_NOTIFICATIONS__0__URL", "http://x", ""),
        ("ROTATOR_TEAMS__T__PROVIDERS", '["bw"]', BW),
        ("ROTATOR_POLICIES__INCIDENT__X", "1", ""),
        ("ROTATOR_PROVIDERS__NEW__TIMEOUT", "3s", BW),
        ("ROTATOR_HOOKS__ALLOWED_HOSTS", "a.example.com", ""),
        ("ROTATOR_HOOKS__ALLOWED_HOSTS", '["a.example.com", 3]', ""),
        ("ROTATOR_STATE____URL", "x", ""),
        ("ROTATOR_LOG", "[" * 100 + "]" * 100, ""),
        ("ROTATOR_STATE__URL", "sqlite:////tmp/st\x01ate.db", ""),
        ("ROTATOR_HOOKS__COMMANDS", '{"x": {"command": ["/bin/echo", "\\u001b]0;pwned\\u0007"]}}', ""),
        ("ROTATOR_PROVIDERS__BW__BASE_URL", "https://api.example.com/\u202ex", BW),
        ("ROTATOR_NOTIFICATIONS", '[{"url": "https://hooks.example.com/x\\u2028y"}]', ""),
    ],
)
def test_an_override_is_blamed_on_its_variable(tmp_path: Path, variable: str, value: str, text: str) -> None:
    problems = _config_problems(tmp_path, text, {variable: value})
    assert len(problems) == 1 and problems[0].startswith(f"environment variable {variable}:"), problems


@pytest.mark.parametrize(
    ("variable", "value", "setting"),
    [
        ("ROTATOR_HOOKS__ALLOWED_HOSTS", '["a.example.com", "*.b.example.com"]', ("hooks", "allowed_hosts")),
        ("ROTATOR_NOTIFICATIONS", '[{"url": "https://hooks.example.com/x"}]', ("notifications",)),
        ("ROTATOR_DAEMON__LISTEN", "[::1]:9464", ("daemon", "listen")),
        ("ROTATOR_TEAMS__T", '{"policy_files": ["t.yaml"], "providers": ["bw"]}', ("teams", "t")),
    ],
)
def test_lists_and_mappings_come_from_the_environment_as_json(
    tmp_path: Path, variable: str, value: str, setting: tuple[str, ...]
) -> None:
    path = tmp_path / "rotator.yaml"
    path.write_text(BW)
    loaded: object = config.load(path, environ={variable: value})
    for part in setting:
        loaded = loaded[part] if isinstance(loaded, dict) else getattr(loaded, part)
    assert loaded, (variable, loaded)


def test_a_missing_policies_dir_names_the_line(tmp_path: Path) -> None:
    (tmp_path / "rotator.yaml").write_text("log: {level: info}\npolicies_dir: /nonexistent\n")
    result = _cli(tmp_path, "validate", "--offline")
    assert result.returncode == 2 and f"{tmp_path / 'rotator.yaml'}:2" in result.stderr, result.stderr


def test_an_error_quotes_a_huge_value_briefly(tmp_path: Path) -> None:
    huge = "x" * 1_000_000
    problems = _policy_problems(tmp_path, POLICY.replace("max_age: 90d", f"max_age: {huge}"))
    assert problems and all(len(p) < 400 for p in problems), [p[:200] for p in problems]


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rotator", "--config", str(tmp_path / "rotator.yaml"), *args],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ},
        cwd=tmp_path,
        timeout=120,
    )


@pytest.mark.parametrize(
    "setting",
    [
        'state: {url: "nonsense://"}',
        'state: {url: "sqlite:////nonexistent/dir/x.db"}',
        'daemon: {listen: "999.1.1.1:99999"}',
        'providers: {bw: {type: brandwave, base_url: "http://[::1:9"}}',
    ],
)
@pytest.mark.parametrize("command", [("validate", "--offline"), ("status",), ("plan",)])
def test_no_command_meets_a_value_validate_would_refuse(tmp_path: Path, setting: str, command: tuple[str, ...]) -> None:
    (tmp_path / "policies").mkdir()
    (tmp_path / "rotator.yaml").write_text(setting + "\n")
    result = _cli(tmp_path, *command)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert f"{tmp_path / 'rotator.yaml'}:1:" in result.stderr


@pytest.mark.parametrize(
    "url",
    ["sqlite:////proc/rotator-test.db", "postgresql+psycopg://rotator:pw-not-shown@127.0.0.1:1/rotator"],
    ids=["SQLite file the system refuses", "PostgreSQL server down"],
)
@pytest.mark.parametrize("command", [("status",), ("db", "status"), ("history", "x")])
def test_a_state_database_that_cannot_be_opened_is_one_line(tmp_path: Path, url: str, command: tuple[str, ...]) -> None:
    (tmp_path / "policies").mkdir()
    (tmp_path / "rotator.yaml").write_text(f'state: {{url: "{url}"}}\n')
    result = _cli(tmp_path, *command)
    if command == ("db", "status") and url.startswith("sqlite"):
        # looked at, not opened: opening would make the file
        assert result.returncode == 0 and "database: none at /proc/rotator-test.db yet" in result.stdout
        return
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "state.url" in lines[0] and "pw-not-shown" not in result.stderr, lines


@pytest.mark.parametrize("config_path", ["/dev/zero", "fifo", "."], ids=["device", "FIFO", "directory"])
def test_a_config_that_is_no_regular_file_is_refused_at_once(tmp_path: Path, config_path: str) -> None:
    if config_path == "fifo":
        os.mkfifo(tmp_path / "fifo")
    result = subprocess.run(
        [sys.executable, "-m", "rotator", "--config", config_path, "validate", "--offline"],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
        timeout=60,
    )
    assert result.returncode == 2 and "not a regular file" in result.stderr, result.stderr


def test_a_daemon_that_cannot_listen_there_names_daemon_listen(tmp_path: Path) -> None:
    (tmp_path / "policies").mkdir()
    (tmp_path / "rotator.yaml").write_text(
        f'state: {{url: "sqlite:///{tmp_path}/state.db"}}\ndaemon: {{listen: "203.0.113.7:9464"}}\n'
    )
    result = _cli(tmp_path, "run")
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert "daemon.listen 203.0.113.7:9464: not an address of this machine" in result.stderr


def test_a_second_daemon_on_a_busy_port_says_so_in_one_line(tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        (tmp_path / "policies").mkdir()
        (tmp_path / "rotator.yaml").write_text(
            f'state: {{url: "sqlite:///{tmp_path}/state.db"}}\ndaemon: {{listen: "127.0.0.1:{port}"}}\n'
        )
        result = _cli(tmp_path, "run")
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert f"daemon.listen 127.0.0.1:{port}: the address is in use" in result.stderr
