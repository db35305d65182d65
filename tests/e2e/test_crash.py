"""SIGKILL at every step boundary (and between each provider call and the state write that records it);
a second run resumes and completes, leaves no orphaned key, and revokes the old key exactly once."""

from __future__ import annotations

import signal

import pytest

from rotator.providers.brandwave import PATH
from tests.support.world import World

pytestmark = pytest.mark.e2e

FAILPOINTS = [
    "after:creating",
    "after-create",  # the provider created a key; nothing recorded it, not even the store
    "after-stage-write",  # the key is in AWSPENDING; the state database does not know
    "after:staged",
    "after:probed",
    "after-promote-call",  # AWSCURRENT moved; the state database still says probed
    "after:promoted",
    "after:cutover_wait",
    "after:revoking",
    "after-revoke-call",  # the old key is revoked; the state database still says revoking
    "after:verifying",
]


@pytest.mark.parametrize("point", FAILPOINTS)
def test_killed_then_resumed(world: World, point: str) -> None:
    crashed = world.cli("rotate", world.name, env={"ROTATOR_FAILPOINTS": point})
    assert crashed.returncode == -signal.SIGKILL, crashed.stdout + crashed.stderr
    assert world.probe(world.current()["api_key"]) == 200

    resumed = world.cli("rotate", world.name)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "resuming rotation" in resumed.stdout

    current = world.current()
    assert world.live_ids() == {current["key_id"]}
    assert current["key_id"] != world.first["id"]
    assert world.probe(current["api_key"]) == 200 and world.probe(world.first["token"]) == 401
    deletes = [r for r in world.requests() if r["method"] == "DELETE" and r["path"] == f"{PATH}/{world.first['id']}"]
    assert len(deletes) == 1
    assert not world.pending_left()


@pytest.mark.parametrize("point", ["after-stage-write", "after:staged", "after-promote-call", "after:promoted"])
def test_killed_then_resumed_with_vault(vault_world: World, point: str) -> None:
    """Crash between stage and promote, and between promote and the metadata write: one new version, not two."""
    w = vault_world
    crashed = w.cli("rotate", w.name, env={"ROTATOR_FAILPOINTS": point})
    assert crashed.returncode == -signal.SIGKILL, crashed.stdout + crashed.stderr
    resumed = w.cli("rotate", w.name)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert w.versions() == 2
    current = w.current()
    assert current["key_id"] != w.first["id"] and w.live_ids() == {current["key_id"]}
    assert w.probe(current["api_key"]) == 200 and w.probe(w.first["token"]) == 401
    assert not w.pending_left()
