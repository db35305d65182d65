"""The CLI with a Vault store: permission errors and validation warnings, as a person sees them."""

from __future__ import annotations

import uuid

import pytest

from tests.conftest import OpenBao
from tests.support.world import World

pytestmark = pytest.mark.e2e


def test_a_denied_pending_path_fails_with_a_clear_message(vault_world: World, openbao: OpenBao) -> None:
    client = openbao.client()
    name = f"deny-pending-{uuid.uuid4().hex[:6]}"
    client.sys.create_or_update_policy(
        name=name,
        policy='path "secret/*" { capabilities = ["create", "read", "update", "delete", "list", "patch"] }\n'
        'path "secret/data/rotator-pending/*" { capabilities = ["deny"] }',
    )
    token = client.auth.token.create(policies=[name], ttl="10m")["auth"]["client_token"]
    result = vault_world.cli("rotate", vault_world.name, env={"RT_TEST_VAULT_TOKEN": token})
    assert result.returncode == 1, result.stdout + result.stderr
    assert "permission denied on secret/data/rotator-pending/" in result.stdout
    assert "Traceback" not in result.stderr and token not in result.stdout + result.stderr
    assert vault_world.live_ids() == {vault_world.first["id"]}
    assert vault_world.current()["key_id"] == vault_world.first["id"]


def test_validate_warns_when_max_versions_would_drop_the_previous_key(vault_world: World) -> None:
    assert vault_world.vault is not None
    vault_world.vault.secrets.kv.v2.update_metadata(path=vault_world.secret_id, max_versions=1)
    result = vault_world.cli("validate")
    assert result.returncode == 0
    assert "warning:" in result.stderr and "max_versions is 1" in result.stderr
