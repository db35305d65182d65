"""`reconcile` finds what rotations left behind, and with --fix cleans it, never touching a current key."""

import json
import uuid

import httpx

from rotator.app import App
from rotator.reconcile import reconcile
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
