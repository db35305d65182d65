"""CLI conventions a newcomer meets first: --version, exit codes in --help, durations as written,
no `None` in messages, offboarding's dry run."""

from __future__ import annotations

import pytest

from tests.world import World

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
    assert "None" not in history and " →requested" in history
    assert "min_soak=0s" in history


def test_offboard_dry_run_needs_no_reason_and_an_unknown_person_is_an_error(world: World) -> None:
    dry = world.cli("offboard", "alice@example.com", "--dry-run")
    assert dry.returncode == 0 and dry.stdout.split() == [world.name]
    for args in (("--dry-run",), ("--reason", "left")):
        nobody = world.cli("offboard", "nobody@example.com", *args)
        assert nobody.returncode == 2 and "no secret names nobody@example.com" in nobody.stderr
    assert world.cli("offboard", "alice@example.com").returncode == 2  # a real run records why
