"""The deployment the docs describe: the daemon under its unit and the commands an operator runs on
the same host read one state, and root cannot spoil the daemon's files."""

from __future__ import annotations

import configparser
import os
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
