"""CLI conventions a newcomer meets first: --version, exit codes in --help, durations as written,
no `None` in messages, offboarding's dry run."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.world import World

pytestmark = pytest.mark.e2e


def test_version_and_exit_codes_in_help(world: World) -> None:
    version = world.cli("--version")
    assert version.returncode == 0 and version.stdout.startswith("rotator, version ")
    shown = world.cli("--help").stdout
    for code in ("0  completed", "2  bad input", "4  waiting on an operator", "5  held", "6  another process"):
        assert code in shown


def test_durations_print_as_written_and_history_has_no_none(world: World) -> None:
    plan = world.cli("plan").stdout
    assert "max_age 90d" in plan and "days," not in plan
    assert world.cli("rotate", world.name).returncode == 0
    history = world.cli("history", world.name).stdout
    assert "None" not in history and "requested → requested" not in history and "] requested by cli:" in history
    assert " creating → staged " in history and not any(line.endswith(" ") for line in history.splitlines())
    assert "min_soak=0s" in history


def test_offboard_dry_run_needs_no_reason_and_an_unknown_person_is_an_error(world: World) -> None:
    dry = world.cli("offboard", "alice@example.com", "--dry-run")
    assert dry.returncode == 0 and dry.stdout.split() == [world.name]
    for args in (("--dry-run",), ("--reason", "left")):
        nobody = world.cli("offboard", "nobody@example.com", *args)
        assert nobody.returncode == 2 and "no secret names nobody@example.com" in nobody.stderr
    assert world.cli("offboard", "alice@example.com").returncode == 2  # a real run records why


def test_at_a_terminal_logs_are_readable_lines_not_json(world: World) -> None:
    """`log.format: auto`: console lines when stderr is a terminal (here a pty from `script`), JSON in a pipe."""
    import os
    import shutil
    import subprocess
    import sys

    if shutil.which("script") is None:
        pytest.skip("util-linux script is not installed")
    world.config.write_text(world.config.read_text().replace("format: json", "format: auto"))
    command = f"{sys.executable} -m rotator --log-level info rotate {world.name}"
    at_tty = subprocess.run(
        ["script", "-qec", command, "/dev/null"],
        env={**os.environ, "ROTATOR_CONFIG": str(world.config)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert at_tty.returncode == 0, at_tty.stdout
    lines = [line for line in at_tty.stdout.splitlines() if "rotation.completed" in line or "key.created" in line]
    assert lines and not any(line.lstrip().startswith("{") for line in lines), at_tty.stdout[-2000:]
    again = world.cli("--log-level", "info", "rotate", world.name)  # a pipe: JSON for the log shipper
    assert any(line.startswith("{") for line in again.stderr.splitlines()), again.stderr[-1000:]


def test_at_a_terminal_each_step_is_said_once(world: World) -> None:
    """The command prints each step of its rotation; at a terminal the info logs would say each one
    again, so they start at warnings there (unless --log-level asks), whatever log.level says."""
    import os
    import re
    import shutil
    import subprocess
    import sys

    if shutil.which("script") is None:
        pytest.skip("util-linux script is not installed")
    world.config.write_text(world.config.read_text().replace("format: json", "format: auto"))
    command = f"{sys.executable} -m rotator rotate {world.name}"
    at_tty = subprocess.run(
        ["script", "-qec", command, "/dev/null"],
        env={**os.environ, "ROTATOR_CONFIG": str(world.config)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert at_tty.returncode == 0, at_tty.stdout
    for state in ("staged", "promoted", "revoking", "completed"):
        said = [line for line in at_tty.stdout.splitlines() if re.search(rf"\b{state}\b", line)]
        assert len(said) == 1 or (state == "completed" and len(said) == 2), (state, at_tty.stdout[-3000:])
    assert "[info" not in at_tty.stdout


def test_json_output_of_history_validate_and_reconcile(world: World) -> None:
    """Scripts get one JSON document on stdout; logs stay on stderr."""
    import json

    assert world.cli("rotate", world.name).returncode == 0
    history = json.loads(world.cli("history", world.name, "--json").stdout)
    assert history["secret"] == world.name and history["events"][0]["event"] == "requested"
    valid = json.loads(world.cli("validate", "--offline", "--json").stdout)
    assert valid["ok"] is True and valid["secrets"] == 1
    reconciled = json.loads(world.cli("reconcile", "--json").stdout)  # the sandbox is shared: others' orphans
    assert all(set(f) == {"kind", "where", "ident", "why", "fixed"} for f in reconciled["findings"])
    (world.dir / "policies" / "bad.yaml").write_text("policies:\n  x: {max_age: soon}\n")
    broken = world.cli("validate", "--offline", "--json")
    report = json.loads(broken.stdout)
    assert broken.returncode == 2 and report["ok"] is False and "bad.yaml:2:" in report["problems"][0]


def test_incident_shows_live_progress_at_a_terminal_and_a_line_per_change_in_a_pipe(world: World) -> None:
    import os
    import shutil
    import subprocess
    import sys

    if shutil.which("script") is None:
        pytest.skip("util-linux script is not installed")
    piped = world.cli("incident", world.name, "--reason", "INC-7")
    assert piped.returncode == 0, piped.stderr
    changes = [line for line in piped.stdout.splitlines() if f" {world.name} [" in line]
    states = [line.split()[-1] for line in changes]
    assert states[-1] == "completed" and "revoking" in states and len(states) == len(set(states)), changes
    assert "\x1b[" not in piped.stdout  # no terminal control codes in a file or a pipe

    command = f"{sys.executable} -m rotator incident {world.name} --reason INC-8"
    at_tty = subprocess.run(
        ["script", "-qec", command, "/dev/null"],
        env={**os.environ, "ROTATOR_CONFIG": str(world.config), "COLUMNS": "100", "LINES": "30"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert at_tty.returncode == 0, at_tty.stdout[-2000:]
    assert "1/1 finished" in at_tty.stdout and "waiting for" in at_tty.stdout
    summary = at_tty.stdout[at_tty.stdout.rindex("outcome") :]
    assert world.name in summary and "completed" in summary


def test_with_no_config_anywhere_the_error_says_what_was_looked_for(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("ROTATOR_")}
    done = subprocess.run(
        [sys.executable, "-m", "rotator", "validate"],
        cwd=str(tmp_path),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "no rotator.yaml found" in done.stderr and "ROTATOR_CONFIG" in done.stderr, done.stderr
    assert "policy directory not found (the default policies_dir)" in done.stderr


def test_every_json_option_says_what_it_prints(world: World) -> None:
    for command in ("status", "plan", "history", "validate", "check", "reconcile", "incident", "offboard"):
        shown = world.cli(command, "--help").stdout
        assert "--json" in shown and "one JSON document on stdout" in shown, command


def test_a_misspelt_secret_is_bad_input_for_status_and_history(world: World) -> None:
    for command in ("status", "history"):
        typo = world.cli(command, world.name[:-1])
        assert typo.returncode == 2 and f"unknown secret {world.name[:-1]!r}" in typo.stderr, (command, typo.stderr)
        assert world.name in typo.stderr  # the close name is offered


def test_a_printed_short_id_names_its_rotation(world: World) -> None:
    """Commands print `[ff03204a]`; release, abort and supply take it (or any unique prefix)."""
    policy = world.dir / "policies" / "main.yaml"
    policy.write_text(policy.read_text().replace("min_soak: 0s", "min_soak: 1h"))
    first = world.cli("rotate", world.name, "--detach")
    assert first.returncode == 3, first.stdout
    rotation = json.loads(world.cli("status", world.name, "--json").stdout)["secrets"][0]["rotation"]["id"]
    aborted = world.cli("abort", rotation[:8], "--reason", "test")
    assert aborted.returncode != 2 and "no rotation" not in aborted.stderr, aborted.stderr
    assert "aborted" in world.cli("history", world.name).stdout
    unknown = world.cli("abort", "0000", "--reason", "test")
    assert unknown.returncode == 2 and "no rotation with id '0000'" in unknown.stderr


@pytest.mark.parametrize("person", ["alice", "Alice@Example.com", "ALICE"])
def test_offboard_finds_a_person_however_written(world: World, person: str) -> None:
    dry = world.cli("offboard", person, "--dry-run")
    assert dry.returncode == 0 and dry.stdout.split() == [world.name], dry.stderr


def test_offboard_suggests_a_close_name(world: World) -> None:
    typo = world.cli("offboard", "alcie@example.com", "--dry-run")
    assert typo.returncode == 2 and "did you mean alice@example.com" in typo.stderr, typo.stderr
    begun = world.cli("offboard", "ali", "--dry-run")  # the beginning of a name, not a whole part
    assert begun.returncode == 2 and "did you mean alice@example.com" in begun.stderr, begun.stderr


def _started(world: World, *args: str) -> subprocess.Popen[str]:
    """`rotator ARGS` running in the background, its output to read as it comes."""
    env = {**os.environ, "ROTATOR_CONFIG": str(world.dir / "rotator.yaml"), **world.extra_env()}
    command = [sys.executable, "-m", "rotator", *args]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _until(proc: subprocess.Popen[str], text: str) -> None:
    """Read the command's output until `text` appears (the step it waits in), not for a time."""
    assert proc.stdout is not None
    for line in proc.stdout:
        if text in line:
            return
    raise AssertionError(f"{text!r} never appeared")


def test_ctrl_c_detaches_a_waiting_rotate_and_leaves_it_recorded(world: World) -> None:
    """Ctrl-C used to end `rotate` with click's "Aborted!" (exit 1): now it detaches (exit 3), the
    rotation stays at its step with its lease let go, and a second run takes it on."""
    policy = world.dir / "policies" / "main.yaml"
    policy.write_text(policy.read_text().replace("min_soak: 0s", "min_soak: 1h"))
    proc = _started(world, "rotate", world.name)
    _until(proc, "cutover gate")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 3 and "interrupted" in err and "Traceback" not in err, err[-2000:]
    rotation = json.loads(world.cli("status", world.name, "--json").stdout)["secrets"][0]["rotation"]
    assert rotation["state"] == "cutover_wait"
    again = world.cli("rotate", world.name, "--detach")
    assert again.returncode == 3 and "resuming rotation" in again.stdout  # no lease left behind


@pytest.mark.parametrize("sent", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_stops_a_bulk_command_after_the_step_in_hand(world: World, sent: signal.Signals) -> None:
    """Two Ctrl-C used to leave `offboard` running to the end: now the first stops it after the
    step in hand (exit 3), the rotation recorded where it is for a daemon to take on. SIGTERM
    (`timeout`, a CI's cancel, a container's stop) used to kill it mid-request: it stops alike."""
    world.config.write_text(world.config.read_text() + "policies:\n  offboarding:\n    cutover: {min_soak: 1h}\n")
    proc = _started(world, "offboard", "alice@example.com", "--reason", "left")
    _until(proc, "cutover_wait")
    proc.send_signal(sent)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 3 and "interrupted: 0 not started, 1 recorded" in err, (out[-1000:], err[-2000:])
    rotation = json.loads(world.cli("status", world.name, "--json").stdout)["secrets"][0]["rotation"]
    assert rotation["state"] == "cutover_wait"


def test_status_says_when_no_daemon_moves_a_waiting_rotation(world: World) -> None:
    from tests.e2e.test_daemon import Daemon, wait_for

    policy = world.dir / "policies" / "main.yaml"
    policy.write_text(policy.read_text().replace("min_soak: 0s", "min_soak: 1h"))
    assert world.cli("rotate", world.name, "--detach").returncode == 3
    alone = world.cli("status")
    assert "no daemon is running on this state database: 1 rotation(s) in flight wait" in alone.stderr, alone.stderr
    daemon = Daemon(world)
    try:
        wait_for(lambda: json.loads(world.cli("status", "--json").stdout)["daemons_alive"] == 1, what="a heartbeat")
        watched = world.cli("status")
        assert watched.returncode == 0 and "no daemon" not in watched.stderr, watched.stderr
        assert "cutover_wait" in watched.stdout
    finally:
        daemon.stop()


def test_ctrl_c_at_a_hidden_prompt_starts_nothing_and_exits_130(world: World) -> None:
    import pty
    import select

    main_fd, tty = pty.openpty()
    env = {**os.environ, "ROTATOR_CONFIG": str(world.config)}
    argv = [sys.executable, "-m", "rotator", "incident", "--leaked-key", "-", "--reason", "INC-9"]
    process = subprocess.Popen(argv, stdin=tty, stdout=tty, stderr=tty, env=env)
    os.close(tty)
    seen = b""
    try:
        while b"leaked key" not in seen:  # the prompt: the command now waits on the person
            ready, _, _ = select.select([main_fd], [], [], 60)
            assert ready, seen
            seen += os.read(main_fd, 4096)
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=60)
        with contextlib.suppress(OSError):
            while chunk := os.read(main_fd, 4096):
                seen += chunk
    finally:
        os.close(main_fd)
        if process.poll() is None:
            process.kill()
    assert code == 130 and b"interrupted" in seen and b"Traceback" not in seen, seen
    assert world.cli("history", world.name, "--json").stdout.count('"event"') == 0
