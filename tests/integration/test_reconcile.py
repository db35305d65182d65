"""`reconcile` finds what rotations left behind, and with --fix cleans it, never touching a current key."""

import json
import uuid

import httpx

from rotator.app import App
from rotator.operations.reconcile import reconcile
from tests.support.world import World


def test_orphaned_key_and_pending_version_are_found_and_fixed(world: World) -> None:
    app = App.load(world.config)
    admin = {"Authorization": f"Bearer {world.first['token']}"}
    orphan = httpx.post(
        f"{world.brandwave}/v1/personal-access-tokens",
        headers=admin,
        json={"name": f"rotator-{uuid.uuid4()}"},
    ).json()["data"]
    stray = str(uuid.uuid4())
    world.sm.put_secret_value(
        SecretId=world.secret_id,
        ClientRequestToken=stray,
        VersionStages=["AWSPENDING"],
        SecretString=json.dumps({"api_key": "x" * 20}),
    )
    found = reconcile(app, fix=False, actor="test")
    kinds = {(f.kind, f.ident.split(" ")[0]) for f in found}
    assert ("key", orphan["id"]) in kinds and ("pending", stray) in kinds
    assert world.probe(orphan["token"]) == 200

    reconcile(app, fix=True, actor="test")
    assert world.probe(orphan["token"]) == 401
    assert not world.pending_left()
    assert world.probe(world.first["token"]) == 200
    again = [f for f in reconcile(app, fix=False, actor="test") if f.ident.split(" ")[0] in (orphan["id"], stray)]
    assert again == []


def test_the_current_key_is_never_an_orphan(world: World) -> None:
    app = App.load(world.config)
    rotation = app.db.create_rotation(
        secret=world.name, provider="bw", policy="fast", trigger="manual", reason="", actor="t"
    )
    assert app.runner("t").run(rotation.id, follow=True).state == "completed"
    current = world.current()["key_id"]
    assert all(current not in f.ident for f in reconcile(app, fix=False, actor="test"))


def test_a_key_a_rotation_in_flight_still_needs_is_never_revoked(world: World) -> None:
    """After a restore from backup, the old key at a rotation's gate may have been made by a
    rotation the restored database does not know: it is still the key applications use until the
    gate opens. A key left alive on purpose waits for a person (`--ack`), never for --fix."""
    app = App.load(world.config)
    admin = {"Authorization": f"Bearer {world.first['token']}"}

    def made_by_an_unknown_rotation() -> dict[str, str]:
        key = httpx.post(
            f"{world.brandwave}/v1/personal-access-tokens", headers=admin, json={"name": f"rotator-{uuid.uuid4()}"}
        ).json()["data"]
        return {"id": key["id"], "token": key["token"]}

    at_the_gate, left_alive = made_by_an_unknown_rotation(), made_by_an_unknown_rotation()
    rotation = app.db.create_rotation(
        secret=world.name, provider="bw", policy="fast", trigger="manual", reason="", actor="t"
    )
    app.db.update(rotation, actor="t", state="cutover_wait", old_key_id=at_the_gate["id"])
    app.db.update(
        app.db.get(rotation.id),
        actor="t",
        leftover={"key_id": left_alive["id"], "fingerprint": "sha256:x", "why": "aborted at the gate"},
    )
    found = reconcile(app, fix=True, actor="test")
    assert world.probe(at_the_gate["token"]) == 200 and world.probe(left_alive["token"]) == 200
    assert not [f for f in found if f.kind == "key" and at_the_gate["id"] in f.ident]
    assert [f for f in found if f.kind == "left-alive" and left_alive["id"] in f.ident]
