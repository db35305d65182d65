"""The `rotator` command as a separate process, against the session's moto server and sandbox."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.world import World

pytestmark = pytest.mark.e2e


def test_rotate_prints_each_step_and_exits_zero(world: World) -> None:
    result = world.cli("rotate", world.name, "--reason", "quarterly")
    assert result.returncode == 0, result.stderr
    for state in (
        "creating",
        "staged",
        "probed",
        "promoted",
        "cutover_wait",
        "revoking",
        "verifying",
        "completed",
    ):
        assert f"] {state}" in result.stdout
    assert "completed: new key" in result.stdout.splitlines()[-1]

    status = json.loads(world.cli("status", "--json").stdout)["secrets"][0]
    assert status["secret"] == world.name and status["rotation"] is None and status["age_days"] == 0.0
    history = world.cli("history", world.name).stdout
    assert "rotation.completed" in history and "reason=quarterly" in history


def test_rotate_a_failed_rotation_exits_non_zero(world: World, brandwave: str) -> None:
    import httpx

    httpx.post(f"{brandwave}/_sandbox/config", json={"refuse_new_keys": True})
    result = world.cli("rotate", world.name)
    assert result.returncode == 1
    assert "failed and was rolled back" in result.stdout and "still current" in result.stdout


def test_detach_returns_while_waiting_and_a_second_run_finishes(world: World) -> None:
    policy = world.dir / "policies" / "main.yaml"
    policy.write_text(policy.read_text().replace("min_soak: 0s", "min_soak: 2s"))
    first = world.cli("rotate", world.name, "--detach")
    assert first.returncode == 3 and "in progress (cutover_wait" in first.stdout
    second = world.cli("rotate", world.name)
    assert second.returncode == 0 and "resuming rotation" in second.stdout


def test_unknown_secret_is_bad_input(world: World) -> None:
    result = world.cli("rotate", "no-such-secret")
    assert result.returncode == 2 and "unknown secret 'no-such-secret'" in result.stderr


BAD_FILES = {
    "bad yaml": ("policies:\n  x: [unclosed\n", ":3:"),
    "duplicate key": ("policies:\n  p: {max_age: 1d}\n  p: {max_age: 2d}\n", ":3: "),
    "unknown field": ("policies:\n  p:\n    max_age: 1d\n    maxage: 2d\n", ":4: unknown field 'maxage'"),
    "bad duration": ("policies:\n  p:\n    max_age: ninety days\n", ":3: policies.p.max_age: bad duration"),
    "unknown provider": (
        "secrets:\n  - name: z\n    provider: nope\n    store: {aws: {secret_id: z}}\n    policy: incident\n",
        ":3: secret 'z' names unknown provider 'nope'",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_malformed_policy_files_are_refused_before_anything_runs(world: World, case: str) -> None:
    """file:line error, non-zero exit, and not one request reaches the provider; no state is written."""
    text, where = BAD_FILES[case]
    bad = world.dir / "policies" / "zz-bad.yaml"
    bad.write_text(text)
    before = len(world.requests())
    for args in (("validate",), ("rotate", world.name)):
        result = world.cli(*args)
        assert result.returncode == 2, result.stdout
        assert f"{bad}{where}" in result.stderr, result.stderr
    assert len(world.requests()) == before
    assert not (world.dir / "state.db").exists()
    assert world.current()["key_id"] == world.first["id"]


def test_validate_accepts_a_good_directory(world: World) -> None:
    result = world.cli("validate", str(world.dir / "policies"))
    assert result.returncode == 0 and "ok: 3 policies, 1 secret\n" in result.stdout


def test_example_policies_validate(world: World) -> None:
    """The example files shipped in policies/ are valid against an example config."""
    examples = Path(__file__).parents[2] / "policies"
    config = examples.parent / "rotator.example.yaml"
    result = world.cli("--config", str(config), "validate", str(examples))
    assert result.returncode == 0, result.stderr


def test_no_key_in_logs_or_state_with_debug_logging(world: World) -> None:
    result = world.cli("--log-level", "debug", "rotate", world.name)
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    new_key = world.current()["api_key"]
    assert '"level": "debug"' in output
    for value in (world.first["token"], new_key):
        assert value not in output
    blob = b"".join(p.read_bytes() for p in world.dir.glob("state.db*"))
    assert world.first["token"].encode() not in blob and new_key.encode() not in blob
