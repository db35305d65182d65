"""The deployment the docs describe: the daemon under its unit and the commands an operator runs on
the same host read one state, and root cannot spoil the daemon's files."""

from __future__ import annotations

import configparser
import json
import os
import shutil
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from tests.e2e.test_daemon import Daemon, completed, daemons, make_due, wait_for
from tests.support.world import World

pytestmark = pytest.mark.e2e
__all__ = ["daemons"]  # the fixture, imported for this module's tests
ROOT = Path(__file__).parents[2]


def _unit() -> configparser.ConfigParser:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read_string((ROOT / "systemd" / "rotator.service").read_text())
    return unit


def test_the_example_config_names_the_directory_the_unit_gives_the_daemon() -> None:
    service = _unit()["Service"]
    example = YAML(typ="safe").load(ROOT / "rotator.example.yaml")
    assert example["state"]["directory"] == f"/var/lib/{service['StateDirectory']}"
    # a uid of its own that outlives the service: `sudo -u rotator rotator status` needs it
    assert service.get("DynamicUser", "no") == "no" and service["User"] == "rotator"
    assert "ROTATOR_CONFIG=/etc/rotator/rotator.yaml" in service["Environment"]


def _as_deployed(world: World, directory: Path) -> None:
    """The world's rotator.yaml with the example's state section (its directory moved under tmp)."""
    text = world.config.read_text()
    line = next(line for line in text.splitlines() if line.startswith("state:"))
    world.config.write_text(text.replace(line, f'state: {{directory: "{directory}", url: ""}}'))


def test_the_cli_on_the_host_reads_the_daemons_state(world: World, daemons: list[Daemon], tmp_path: Path) -> None:
    state = tmp_path / "var-lib-rotator"
    state.mkdir(mode=0o700)
    _as_deployed(world, state)
    make_due(world)
    # as systemd starts it: $STATE_DIRECTORY set, a home of its own
    daemon = Daemon(world, env={"STATE_DIRECTORY": str(state), "HOME": str(tmp_path / "daemon-home")})
    daemons.append(daemon)
    wait_for(lambda: completed(world) == 1, what="the daemon to rotate the due secret")
    daemon.stop()
    # as an operator runs it (sudo): no $STATE_DIRECTORY, another home, another directory
    operator = {"HOME": str(tmp_path / "operator-home"), "STATE_DIRECTORY": ""}
    result = world.cli("history", world.name, env=operator)
    assert result.returncode == 0, result.stderr
    assert "daemon:" in result.stdout and "completed" in result.stdout
    assert sorted(p.name for p in state.iterdir() if p.name.startswith("rotator.db")) >= ["rotator.db"]
    assert not (tmp_path / "operator-home").exists() and not (tmp_path / "daemon-home").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can be refused a directory another user owns")
def test_root_is_refused_the_state_directory_of_another_user(world: World, tmp_path: Path) -> None:
    state = tmp_path / "var-lib-rotator"
    state.mkdir(mode=0o700)
    os.chown(state, 65534, 65534)
    _as_deployed(world, state)
    for command in (("status",), ("rotate", world.name), ("db", "status")):
        result = world.cli(*command)
        assert result.returncode == 2, (command, result.stdout, result.stderr)
        assert f"the state directory {state} belongs to user" in result.stderr
        assert "sudo -u" in result.stderr and "Traceback" not in result.stderr
    assert list(state.iterdir()) == []
    # the same for a SQLite file named by state.url in that directory
    text = world.config.read_text()
    line = next(line for line in text.splitlines() if line.startswith("state:"))
    world.config.write_text(text.replace(line, f'state: {{url: "sqlite:///{state}/rotator.db"}}'))
    result = world.cli("status")
    assert result.returncode == 2 and "belongs to user" in result.stderr, result.stderr
    assert list(state.iterdir()) == []


def test_a_relative_sqlite_url_is_beside_rotator_yaml_and_a_new_database_is_said(world: World, tmp_path: Path) -> None:
    """`rotator --config ~/trial/rotator.yaml status` run from elsewhere reads the trial's state;
    a command that makes a state database says so (a second, empty one is the likely mistake)."""
    import subprocess
    import sys

    text = world.config.read_text()
    line = next(line for line in text.splitlines() if line.startswith("state:"))
    world.config.write_text(text.replace(line, 'state: {url: "sqlite:///trial.db"}'))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    def status() -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "rotator", "--config", str(world.config), "status"]
        env = {k: v for k, v in os.environ.items() if k != "ROTATOR_CONFIG"}
        return subprocess.run(argv, cwd=elsewhere, env=env, capture_output=True, text=True, check=False)

    first = status()
    assert first.returncode == 0, first.stderr
    assert f"note: made a new, empty state database ({world.dir / 'trial.db'})" in first.stderr
    assert (world.dir / "trial.db").exists() and list(elsewhere.iterdir()) == []
    again = status()
    assert again.returncode == 0 and "note:" not in again.stderr


def test_db_upgrade_and_db_status_make_no_database(world: World, tmp_path: Path) -> None:
    state = tmp_path / "var-lib-rotator"
    state.mkdir(mode=0o700)
    _as_deployed(world, state)
    upgrade = world.cli("db", "upgrade")
    assert (
        upgrade.returncode == 2 and f"no state database at {state / 'rotator.db'}: nothing to upgrade" in upgrade.stderr
    )
    looked = world.cli("db", "status")
    assert looked.returncode == 0 and "database: none at" in looked.stdout
    assert list(state.iterdir()) == []


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root to act as another user")
def test_what_another_user_may_not_read_is_said_not_taken_for_nothing(world: World, tmp_path: Path) -> None:
    """Run as an unprivileged user: a working directory it may not look into holds no rotator.yaml
    of its; a policy directory it may not read is no empty one."""
    import subprocess
    import sys
    import tempfile

    # pytest's own directories are root's alone: this one another user can walk into
    base = Path(tempfile.mkdtemp(prefix="rotator-other-user-"))
    base.chmod(0o755)
    home = base / "roots-home"
    home.mkdir(mode=0o700)
    shared = base / "shared"
    shared.mkdir(mode=0o755)
    (shared / "policies").mkdir(mode=0o700)
    (shared / "rotator.yaml").write_text(f'state: {{directory: "{shared / "state"}"}}\npolicies_dir: policies\n')
    (shared / "rotator.yaml").chmod(0o644)

    def as_nobody(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
        argv = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-m", "rotator", *args]
        clean = {k: v for k, v in os.environ.items() if k != "ROTATOR_CONFIG"}
        return subprocess.run(
            argv, cwd=home, env={**clean, "HOME": str(base), **env}, capture_output=True, text=True, check=False
        )

    try:
        lost = as_nobody("validate", "--offline")
        unreadable = as_nobody("validate", "--offline", ROTATOR_CONFIG=str(shared / "rotator.yaml"))
    finally:
        shutil.rmtree(base)
    assert "Permission denied (rotator.yaml)" not in lost.stderr and "no rotator.yaml found" in lost.stderr, lost.stderr
    assert unreadable.returncode == 2, unreadable.stdout + unreadable.stderr
    assert "cannot read the policy directory (Permission denied)" in unreadable.stderr


def test_supply_for_a_rotation_that_waits_for_no_key_reads_none(world: World) -> None:
    done = world.cli("rotate", world.name)
    assert done.returncode == 0
    rotation = json.loads(world.cli("history", world.name, "--json").stdout)["events"][0]["rotation_id"]
    result = world.cli("supply", rotation[:8], input="bwpat_not-a-key-anyone-should-read\n")
    assert result.returncode == 2 and "waits for no key" in result.stderr and "Traceback" not in result.stderr
    assert "bwpat_not" not in result.stdout + result.stderr


def test_reconcile_ack_of_no_such_key_and_a_misspelt_provider_are_bad_input(world: World) -> None:
    acked = world.cli("reconcile", "--ack", "999999", "--reason", "checked")
    assert acked.returncode == 2 and "no open leftover key 999999" in acked.stderr
    typo = world.cli("incident", "--provider", "BW", "--reason", "x")
    assert typo.returncode == 2 and "unknown provider instance 'BW' (did you mean 'bw'?)" in typo.stderr


def test_a_reader_that_stops_reading_ends_the_command_quietly(world: World) -> None:
    import subprocess
    import sys

    read, write = os.pipe()
    os.close(read)  # nobody reads: the command's first write meets a broken pipe, whatever its speed
    try:
        env = {**os.environ, "ROTATOR_CONFIG": str(world.config)}
        result = subprocess.run(
            [sys.executable, "-m", "rotator", "plan"], stdout=write, stderr=subprocess.PIPE, env=env, check=False
        )
    finally:
        os.close(write)
    assert result.returncode == 141 and b"Broken pipe" not in result.stderr and b"Traceback" not in result.stderr
