"""The operator's part of a rotation, in-process (the e2e tests drive the same through the CLI): what
rotator asks for, what it checks in a supplied key, and that it completes only once the old key is
refused (concepts.md promises 1, 3, 4 and 9 for dashboard providers)."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest

from rotator.app import App
from rotator.engine import interventions
from rotator.engine.rotation import Engine
from rotator.errors import KeyRejected, RotationError
from rotator.keys import fingerprint, secret
from rotator.state.schema import Rotation
from tests.conftest import OpenBao
from tests.support.provider_world import ProviderWorld


def start(w: ProviderWorld) -> tuple[App, Engine, Rotation]:
    app = w.app()
    rotation = app.db.create_rotation(
        secret=w.name, provider="p", policy="fast", trigger="manual", reason="test", actor="test"
    )
    engine = app.runner("test").engine
    asked = engine.advance(rotation).rotation
    return app, engine, asked


@pytest.mark.parametrize("provider_world", ["blueticks", "goblue"], indirect=True)
def test_promise_1_and_3_the_operator_flow_asks_checks_and_completes_once_the_old_key_is_refused(
    provider_world: ProviderWorld,
) -> None:
    w = provider_world
    app, engine, asked = start(w)
    assert asked.state == "awaiting_new_key"
    assert f"rotator-{asked.id}" in (asked.waiting_for or "") and f"rotator supply {asked.id}" in (
        asked.waiting_for or ""
    )
    assert asked.old_identity  # what the old key belongs to, to hold the new key against
    assert engine.advance(asked).rotation.state == "awaiting_new_key"  # no key yet: it only waits

    made = w.mint(name=f"rotator-{asked.id}")
    staged = engine.supply(asked, secret(made["secret"]))
    assert staged.state == "staged" and staged.new_fingerprint == fingerprint(made["secret"])
    assert w.current()["api_key"] == w.first["secret"]  # staged, not current until probed and promoted

    waiting = staged
    for _ in range(8):
        waiting = engine.advance(waiting).rotation
        if waiting.state == "awaiting_revocation":
            break
    assert waiting.state == "awaiting_revocation", waiting.state
    assert w.current()["api_key"] == made["secret"]
    assert "completes once the old key is refused" in (waiting.waiting_for or "")
    again = engine.advance(waiting).rotation
    assert again.state == "awaiting_revocation" and again.next_attempt_at > app.db.clock()  # old key still works

    w.revoke(w.first["id"])
    done = engine.advance(again).rotation
    assert done.state == "completed" and done.finished_at is not None
    events = [e.event for e in app.db.events(rotation_id=asked.id)]
    assert events.count("operator.action_needed") == 2 and "key.supplied" in events


@pytest.mark.parametrize("provider_world", ["blueticks"], indirect=True)
def test_promise_9_a_supplied_key_is_checked_before_it_goes_anywhere(provider_world: ProviderWorld) -> None:
    w = provider_world
    app, engine, asked = start(w)
    other_account = w.mint(account=f"acct_{uuid.uuid4().hex[:8]}")
    revoked = w.mint()
    w.revoke(revoked["id"])
    cases = [
        ("not-a-key-at-all", "format:"),
        (other_account["secret"], "account:"),
        (revoked["secret"], "refused by"),
        (w.first["secret"], "the key being replaced"),
    ]
    for key, reason in cases:
        with pytest.raises(KeyRejected, match=reason):
            engine.supply(asked, secret(key))
    fresh = app.db.get(asked.id)
    assert fresh.state == "awaiting_new_key" and fresh.staged_at is None
    assert [e.event for e in app.db.events(rotation_id=asked.id)].count("supply.rejected") == len(cases)
    staged = engine.supply(fresh, secret(w.mint()["secret"]))
    assert staged.state == "staged"
    with pytest.raises(RotationError, match="not waiting for a new key"):
        engine.supply(staged, secret(w.mint()["secret"]))


@pytest.mark.parametrize("provider_world", ["blueticks"], indirect=True)
def test_promise_3_a_release_at_the_gate_asks_the_operator_to_revoke(provider_world: ProviderWorld) -> None:
    """A person releasing a dashboard rotation at the gate does not revoke anything: rotator cannot;
    it asks the operator to, naming the old key by its prefix, and says the gate was released."""
    w = provider_world
    policy = w.dir / "policies" / "main.yaml"
    policy.write_text(policy.read_text().replace("cutover: {min_soak: 0s}", "cutover: {min_soak: 1h}"))
    app, engine, asked = start(w)
    rotation = engine.supply(asked, secret(w.mint()["secret"]))
    for _ in range(8):
        rotation = engine.advance(rotation).rotation
        if rotation.state == "cutover_wait":
            break
    assert rotation.state == "cutover_wait"
    released = interventions.release(engine, rotation, why="incident over")
    assert released.state == "awaiting_revocation"
    asked_to = [e for e in app.db.events(rotation_id=asked.id) if e.event == "operator.action_needed"][-1]
    assert asked_to.detail["gate"] == "cutover.released" and asked_to.detail["action"] == "revoke_key"
    assert w.first["secret"][:8] in asked_to.detail["instructions"]
    assert w.first["id"] in w.live_ids()


@pytest.mark.parametrize("provider_world", ["goblue"], indirect=True)
def test_promise_3_goblue_old_key_idle_follows_its_rate_limit_counter(provider_world: ProviderWorld) -> None:
    """GoBlue shows a key's use only by its hourly X-RateLimit-Remaining: a drop of more than our
    own look is someone using the old key (the gate stays shut for idle_for from then); a drop of
    one is our own look; a failed look says so under the signal's name. Time is the engine's clock."""
    import httpx

    w = provider_world
    policy = w.dir / "policies" / "main.yaml"
    gate = "cutover: {min_soak: 0s, require: [old_key_idle], idle_for: 10m, max_wait: 1d, on_timeout: hold}"
    policy.write_text(policy.read_text().replace("cutover: {min_soak: 0s}", gate))
    app, engine, asked = start(w)
    rotation = engine.supply(asked, secret(w.mint()["secret"]))
    for _ in range(8):
        rotation = engine.advance(rotation).rotation
        if rotation.state == "cutover_wait":
            break
    assert rotation.state == "cutover_wait"
    baseline = engine.advance(rotation).rotation  # the first look: counted from now
    assert baseline.state == "cutover_wait" and "old_key_idle: waiting" in (baseline.waiting_for or "")

    w.faults(rules=[{"kind": "500", "method": "GET", "path": "/v1/forms", "times": 4}])
    unknown = engine.advance(baseline).rotation
    assert "old_key_idle: waiting (usage unknown for now" in (unknown.waiting_for or "")
    w.faults(clear=True)

    # one call by an application still on the old key: with our look, the counter drops by two
    httpx.get(f"{w.sandbox.api_url}/forms", headers={"Authorization": f"Bearer {w.first['secret']}"}).raise_for_status()
    engine.clock = lambda: app.db.clock() + timedelta(minutes=11)
    used = engine.advance(unknown).rotation
    assert used.state == "cutover_wait" and "old_key_idle: waiting (old key used at" in (used.waiting_for or "")

    engine.clock = lambda: app.db.clock() + timedelta(minutes=22)  # 11 minutes since that use, and only our look since
    opened = engine.advance(used).rotation
    assert opened.state == "awaiting_revocation", (opened.state, opened.waiting_for, opened.held_reason)
    asked_to = [e.detail for e in app.db.events(rotation_id=asked.id) if e.event == "operator.action_needed"][-1]
    assert asked_to["gate"] == "cutover.open" and "old_key_idle: passed (last used " in asked_to["signals"]


@pytest.mark.parametrize("provider_world", ["blueticks"], indirect=True)
def test_promise_2_an_aborted_dashboard_rotation_whose_pending_version_cannot_be_cleared_says_so(
    provider_world: ProviderWorld,
) -> None:
    """A supplied key (no id: a dashboard's) was staged, the rotation aborted, and the store then
    refuses to clear the pending version (the secret is marked for deletion): the rotation ends failed, its
    history naming the pending token left behind, and the supplied key is kept as left alive."""
    w = provider_world
    app, engine, asked = start(w)
    staged = engine.supply(asked, secret(w.mint()["secret"]))
    assert staged.state == "staged" and staged.new_key_id is None and staged.staged_at is not None
    rolling = interventions.abort(engine, staged, why="wrong account")
    w.sm.delete_secret(SecretId=w.secret_id, RecoveryWindowInDays=7)  # marked for deletion: no writes
    done = engine.advance(rolling).rotation
    assert done.state == "failed" and "rollback incomplete" in (done.failed_reason or "")
    failed = [e.detail for e in app.db.events(rotation_id=asked.id) if e.event == "rotation.failed"]
    assert len(failed) == 1 and failed[0]["pending"] == asked.id and failed[0]["new_key_id"] is None
    assert "InvalidRequestException" in failed[0]["cleanup_error"] and "aborted" in failed[0]["reason"]
    assert [k.fingerprint for k in app.db.leftovers(w.name)] == [staged.new_fingerprint]


@pytest.mark.parametrize("provider_world", ["blueticks"], indirect=True)
def test_promise_1_the_key_probed_is_held_against_the_old_keys_account_again(
    provider_world: ProviderWorld, openbao: OpenBao
) -> None:
    """The supplied key passed its checks and sits in Vault's pending slot, then someone with write
    access there puts another account's key in its place: the probe before promotion checks the
    account again, so that key never becomes current."""
    w = provider_world
    client = openbao.client()
    value = json.loads(w.sm.get_secret_value(SecretId=w.secret_id)["SecretString"])
    client.secrets.kv.v2.create_or_update_secret(path=w.secret_id, secret=value, mount_point="secret")
    config = w.dir / "rotator.yaml"
    config.write_text(
        config.read_text()
        .replace('{store: aws, secret_id: "test/*"}', '{store: vault, path: "test/*"}')
        .replace(
            "stores:\n",
            f"stores:\n  vault: {{type: vault, url: {openbao.url!r}, auth: {{token: {{env: RT_TEST_VAULT_TOKEN}}}}}}\n",
        )
    )
    policies = w.dir / "policies" / "main.yaml"
    policies.write_text(
        policies.read_text().replace(f"{{aws: {{secret_id: {w.secret_id}}}}}", f"{{vault: {{path: {w.secret_id}}}}}")
    )
    _, engine, asked = start(w)
    staged = engine.supply(asked, secret(w.mint()["secret"]))
    assert staged.state == "staged"
    other = w.mint(account=f"acct_{uuid.uuid4().hex[:8]}")
    swapped = {**value, "api_key": other["secret"], "rotation_id": staged.id}
    client.secrets.kv.v2.create_or_update_secret(
        path=f"rotator-pending/secret/{w.secret_id}/{staged.id}", secret=swapped, mount_point="secret"
    )
    app = w.app()  # another process goes on (this one keeps what it staged in memory)
    engine = app.runner("test").engine
    step = engine.advance(app.db.get(staged.id))
    assert step.rotation.state != "probed"
    assert "another account" in str(step.note) + str(step.rotation.failed_reason), step
    later = step.rotation
    for _ in range(4):
        later = engine.advance(later).rotation
    current = client.secrets.kv.v2.read_secret_version(
        path=w.secret_id, mount_point="secret", raise_on_deleted_version=True
    )
    assert current["data"]["data"]["api_key"] == w.first["secret"]  # the swapped key never became current
