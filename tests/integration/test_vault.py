"""Rotations of secrets stored in Vault KV v2, against a real OpenBao dev server."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import pytest

from rotator.errors import StorePermissionError, StoreUnavailable
from rotator.keys import secret
from rotator.lifecycle import State
from rotator.stores.vault import VaultKV
from tests.conftest import OpenBao, start_openbao
from tests.support.world import World


def test_full_rotation_in_vault_never_shows_a_refused_key(vault_world: World) -> None:
    """A poller reading the application path and calling the provider with it only ever sees accepted keys."""
    w = vault_world
    policy = w.dir / "policies" / "main.yaml"
    policy.write_text(policy.read_text().replace("min_soak: 0s", "min_soak: 1s"))
    statuses: list[int] = []
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            statuses.append(w.probe(w.current()["api_key"]))

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        app = w.app()
        rotation = app.db.create_rotation(
            secret=w.name, provider="bw", policy="fast", trigger="manual", reason="", actor="t"
        )
        done = app.runner("t").run(rotation.id, follow=True)
    finally:
        stop.set()
        poller.join()
    assert done.state == "completed"
    assert len(statuses) >= 5 and set(statuses) == {200}  # it ran throughout (fewer polls on a slow machine)
    assert w.versions() == 2
    assert w.current()["key_id"] == done.new_key_id and w.previous()["key_id"] == w.first["id"]
    assert w.live_ids() == {done.new_key_id} and not w.pending_left()
    assert w.vault is not None
    meta = w.vault.secrets.kv.v2.read_secret_metadata(path=w.secret_id)["data"]["custom_metadata"]
    assert meta["rotation-id"] == done.id and meta["fingerprint"] == done.new_fingerprint


def test_a_concurrent_write_stops_the_rotation_and_survives(vault_world: World) -> None:
    """Someone writes the secret between stage and promote: CAS error, their value stays, our new key is revoked."""
    w = vault_world
    app = w.app()
    engine = app.runner("t").engine
    rotation = app.db.create_rotation(
        secret=w.name, provider="bw", policy="fast", trigger="manual", reason="", actor="t"
    )
    while rotation.state != State.PROBED:
        rotation = engine.advance(rotation).rotation
    assert w.vault is not None
    w.vault.secrets.kv.v2.create_or_update_secret(path=w.secret_id, secret={"api_key": "theirs", "key_id": "x"})
    while not rotation.terminal:
        step = engine.advance(rotation)
        assert not step.held, step.note
        rotation = step.rotation
    assert rotation.state == "failed"
    assert "someone else" in (rotation.failed_reason or "")
    assert w.current()["api_key"] == "theirs"
    assert rotation.new_key_id not in w.live_ids() and not w.pending_left()


def _approle(openbao: OpenBao, policy_hcl: str, token_ttl: str = "1h") -> tuple[str, str]:  # noqa: S107
    client = openbao.client()
    if "approle/" not in client.sys.list_auth_methods()["data"]:
        client.sys.enable_auth_method("approle")
    name = f"rotator-{uuid.uuid4().hex[:8]}"
    client.sys.create_or_update_policy(name=name, policy=policy_hcl)
    client.auth.approle.create_or_update_approle(
        role_name=name, token_policies=[name], token_ttl=token_ttl, token_max_ttl="1h"
    )
    role_id = client.auth.approle.read_role_id(role_name=name)["data"]["role_id"]
    secret_id = client.auth.approle.generate_secret_id(role_name=name)["data"]["secret_id"]
    return role_id, secret_id


FULL = 'path "secret/*" { capabilities = ["create", "read", "update", "delete", "list", "patch"] }'


def test_approle_login_and_token_renewal(openbao: OpenBao) -> None:
    role_id, secret_id = _approle(openbao, FULL, token_ttl="3s")
    store = VaultKV(url=openbao.url, approle=(role_id, secret(secret_id)))
    path = f"approle/{uuid.uuid4().hex}"
    openbao.client().secrets.kv.v2.create_or_update_secret(path=path, secret={"api_key": "k" * 10})
    assert store.read_current(location=f"secret:{path}") is not None
    assert store.logins == 1 and store.renewals == 0
    time.sleep(2.5)  # past two thirds of the 3 s TTL
    assert store.read_current(location=f"secret:{path}") is not None
    assert store.renewals == 1
    time.sleep(2.5)
    assert store.read_current(location=f"secret:{path}") is not None
    assert store.renewals == 2 and store.logins == 1


def test_a_token_that_will_expire_and_cannot_be_renewed_fails_naming_the_fix(openbao: OpenBao) -> None:
    """Failing fast: past two thirds of a non-renewable token's TTL the store stops with a
    permanent error saying what token to give, instead of failing mid-rotation when it expires."""
    token = openbao.client().auth.token.create(ttl="3s", renewable=False)["auth"]["client_token"]
    store = VaultKV(url=openbao.url, token=secret(token))
    path = f"expiring/{uuid.uuid4().hex}"
    openbao.client().secrets.kv.v2.create_or_update_secret(path=path, secret={"api_key": "k" * 10})
    assert store.read_current(location=f"secret:{path}") is not None
    time.sleep(2.5)  # past two thirds of the 3 s TTL, before it ends
    with pytest.raises(StorePermissionError) as exc:
        store.read_current(location=f"secret:{path}")
    assert str(exc.value) == (
        "vault: the token is about to expire and cannot be renewed; "
        "give rotator a renewable or periodic token, or AppRole"
    )
    assert store.renewals == 0


def test_a_token_that_may_not_look_itself_up_fails_naming_the_capability(openbao: OpenBao) -> None:
    """Failing fast: a token without Vault's default policy cannot read its own TTL; the error
    names the path and the capability the policy needs, before anything is read or written."""
    client = openbao.client()
    name = f"kv-only-{uuid.uuid4().hex[:8]}"
    client.sys.create_or_update_policy(name=name, policy=FULL)
    token = client.auth.token.create(policies=[name], no_default_policy=True)["auth"]["client_token"]
    store = VaultKV(url=openbao.url, token=secret(token))
    with pytest.raises(StorePermissionError) as exc:
        store.read_current(location="secret:app/key")
    assert str(exc.value) == (
        "vault: permission denied on auth/token/lookup-self; the policy needs 'read' on auth/token/lookup-self"
    )


def test_a_previous_version_is_read_by_its_number_in_a_new_process(openbao: OpenBao) -> None:
    """The old key is re-read by version after a restart (to prove it, to probe it after
    revoking): a new process, knowing nothing yet, reads that version, not the latest."""
    path = f"versions/{uuid.uuid4().hex}"
    client = openbao.client()
    client.secrets.kv.v2.create_or_update_secret(path=path, secret={"api_key": "first-key", "key_id": "k1"})
    client.secrets.kv.v2.create_or_update_secret(path=path, secret={"api_key": "second-key", "key_id": "k2"})
    fresh = VaultKV(url=openbao.url, token=secret(openbao.root_token))
    first = fresh.read_version(location=f"secret:{path}", version_id="1")
    assert first is not None and first.api_key.get_secret_value() == "first-key" and first.key_id == "k1"
    assert fresh.read_version(location=f"secret:{path}", version_id="3") is None


def test_a_policy_denying_the_pending_path_gives_a_permission_error(openbao: OpenBao) -> None:
    policy = FULL + '\npath "secret/data/rotator-pending/*" { capabilities = ["deny"] }'
    role_id, secret_id = _approle(openbao, policy)
    store = VaultKV(url=openbao.url, approle=(role_id, secret(secret_id)))
    from rotator.plugin.store import StoredValue

    value = StoredValue.new(api_key=secret("new-key-value"), key_id="n", provider="brandwave", rotation_id="r")
    with pytest.raises(StorePermissionError) as exc:
        store.stage(location="secret:app/key", token="r", value=value)
    assert "secret/data/rotator-pending/secret/app/key/r" in str(exc.value)
    assert "needs 'read'" in str(exc.value) or "needs 'create/update'" in str(exc.value)


def test_max_versions_of_one_is_warned_about(openbao: OpenBao) -> None:
    client = openbao.client()
    path = f"warn/{uuid.uuid4().hex}"
    client.secrets.kv.v2.create_or_update_secret(path=path, secret={"api_key": "k" * 10})
    client.secrets.kv.v2.update_metadata(path=path, max_versions=1)
    store = VaultKV(url=openbao.url, token=secret(openbao.root_token))
    assert any("max_versions is 1" in w for w in store.warnings(location=f"secret:{path}"))


def test_a_sealed_vault_is_a_temporary_error(tmp_path: Path) -> None:
    server = start_openbao(tmp_path)
    try:
        store = VaultKV(url=server.url, token=secret(server.root_token))
        assert store.read_current(location="secret:nothing/here") is None
        server.client().sys.seal()
        with pytest.raises(StoreUnavailable, match="sealed"):
            store.read_current(location="secret:nothing/here")
        server.client().sys.submit_unseal_key(server.unseal_key)
        assert store.read_current(location="secret:nothing/here") is None
    finally:
        server.process.terminate()
        server.process.wait(timeout=10)


def test_a_mount_wide_max_versions_of_one_is_warned_about(openbao: OpenBao) -> None:
    client = openbao.client()
    mount = f"kv-{uuid.uuid4().hex[:8]}"
    client.sys.enable_secrets_engine("kv", path=mount, options={"version": "2"})
    client.secrets.kv.v2.configure(max_versions=1, mount_point=mount)
    client.secrets.kv.v2.create_or_update_secret(path="app", secret={"api_key": "k" * 10}, mount_point=mount)
    store = VaultKV(url=openbao.url, token=secret(openbao.root_token))
    assert any("max_versions is 1" in w for w in store.warnings(location=f"{mount}:app"))


def test_promise_1_metadata_the_token_may_not_write_leaves_the_new_key_current_and_says_so(
    vault_world: World, openbao: OpenBao, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store's token may write the secret but not its metadata (no `patch`): promotion stands
    (the new key is current and the rotation completes), and history records that the metadata failed."""
    w = vault_world
    client = openbao.client()
    name = f"rotator-{uuid.uuid4().hex[:8]}"
    no_patch = FULL + '\npath "secret/metadata/test/*" { capabilities = ["read", "list"] }'
    client.sys.create_or_update_policy(name=name, policy=no_patch)
    monkeypatch.setenv(
        "RT_TEST_VAULT_TOKEN", client.auth.token.create(policies=[name], ttl="1h")["auth"]["client_token"]
    )
    app = w.app()
    rotation = app.db.create_rotation(
        secret=w.name, provider="bw", policy="fast", trigger="manual", reason="", actor="t"
    )
    done = app.runner("t").run(rotation.id, follow=True)
    assert done.state == "completed" and w.current()["key_id"] == done.new_key_id
    failed = [e.detail for e in app.db.events(rotation_id=done.id) if e.event == "store.metadata_failed"]
    assert len(failed) == 1 and "patch" in failed[0]["error"], failed
