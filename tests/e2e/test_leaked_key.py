"""`rotator incident --leaked-key -`: from a leaked key (on stdin) to the secret it belongs to, and its rotation."""

from __future__ import annotations

import json
import sqlite3
import uuid

import pytest

from tests.support.world import World

pytestmark = pytest.mark.e2e


def leak(world: World, key: str, *args: str) -> tuple[int, str, str]:
    done = world.cli("--log-level", "debug", "incident", "--leaked-key", "-", *args, input=key + "\n")
    for text in (done.stdout, done.stderr):
        assert key not in text, "the leaked key was printed"
    return done.returncode, done.stdout, done.stderr


def state_db_holds(world: World, key: str) -> bool:
    raw = (world.dir / "state.db").read_bytes()
    with sqlite3.connect(world.dir / "state.db") as db:
        rows = db.execute("SELECT * FROM rotations").fetchall() + db.execute("SELECT * FROM audit_events").fetchall()
    return key.encode() in raw or any(key in str(row) for row in rows)


def test_the_current_key_of_a_secret_rotator_never_rotated_is_found_and_rotated(world: World) -> None:
    leaked = world.first["token"]
    code, out, _ = leak(world, leaked, "--reason", "key pasted in a public issue")
    assert code == 0, out
    assert f"is the current key of {world.name}" in out
    assert world.probe(leaked) == 401
    assert world.current()["api_key"] != leaked and world.probe(world.current()["api_key"]) == 200
    (rotation,) = world.app().db.rotations_of(world.name)
    assert rotation.state == "completed" and rotation.trigger == "incident" and rotation.policy == "incident"
    assert not state_db_holds(world, leaked)


def test_a_key_rotator_made_is_found_by_its_recorded_fingerprint_without_reading_other_secrets(world: World) -> None:
    assert world.cli("rotate", world.name).returncode == 0
    leaked = world.current()["api_key"]
    code, out, _ = leak(world, leaked, "--reason", "INC-1", "--json")
    assert code == 0, out
    document = json.loads(out)
    (found,) = document["leaked_key"]
    first = world.app().db.rotations_of(world.name)[0]
    assert found["secret"] == world.name and found["version"] == "current" and found["rotation_id"] == first.id
    assert [s["state"] for s in document["secrets"]] == ["completed"]
    assert world.probe(leaked) == 401


def test_a_previous_key_already_revoked_is_reported_and_nothing_rotates(world: World) -> None:
    assert world.cli("rotate", world.name).returncode == 0
    leaked = world.first["token"]
    code, out, _ = leak(world, leaked, "--reason", "old laptop image")
    assert code == 0, out
    assert f"a previous key of {world.name}, revoked by rotation" in out and "nothing to rotate" in out
    assert len(world.app().db.rotations_of(world.name)) == 1


def test_a_dry_run_names_the_secret_and_changes_nothing(world: World) -> None:
    code, out, _ = leak(world, world.first["token"], "--dry-run", "--json")
    assert code == 0
    document = json.loads(out)
    assert document["dry_run"] is True and document["would_rotate"] == [{"secret": world.name, "provider": "bw"}]
    assert document["leaked_key"][0]["version"] == "current"
    assert world.app().db.rotations_of(world.name) == [] and world.probe(world.first["token"]) == 200


def test_an_unknown_key_says_so_and_exits_non_zero(world: World) -> None:
    unknown = f"bwpat_{uuid.uuid4().hex}"
    code, _, err = leak(world, unknown, "--reason", "INC-2")
    assert code == 2 and "matches no managed secret" in err
    assert world.app().db.rotations_of(world.name) == []


def test_the_key_is_taken_from_stdin_only(world: World) -> None:
    leaked = world.first["token"]
    done = world.cli("incident", "--leaked-key", leaked, "--reason", "x")
    assert done.returncode == 2 and "standard input" in done.stderr
    assert leaked not in done.stdout + done.stderr
    assert world.probe(leaked) == 200 and world.app().db.rotations_of(world.name) == []


def test_a_key_leaked_from_the_pending_slot_of_a_killed_rotation_is_found(world: World) -> None:
    """Killed after writing the new key to the pending slot, before recording it: no record names
    the key, yet the lookup finds it in the slot and does not call it unmanaged."""
    import signal

    crashed = world.cli("rotate", world.name, env={"ROTATOR_FAILPOINTS": "after-stage-write"})
    assert crashed.returncode == -signal.SIGKILL, crashed.stdout + crashed.stderr
    got = world.sm.get_secret_value(SecretId=world.secret_id, VersionStage="AWSPENDING")
    leaked = json.loads(got["SecretString"])["api_key"]
    code, out, _ = leak(world, leaked, "--reason", "pending key in a crash dump", "--dry-run")
    assert code == 0 and "matches no managed secret" not in out, out
    assert "the pending (not yet current) key of rotation" in out and world.name in out, out
