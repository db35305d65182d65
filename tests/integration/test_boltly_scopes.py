"""Boltly's new key must carry the old key's scopes, checked at the provider, not taken on trust."""

from __future__ import annotations

import httpx
import pytest

from tests.support.provider_world import ProviderWorld


@pytest.mark.parametrize("provider_world", ["boltly"], indirect=True)
def test_a_new_key_with_narrower_scopes_is_rolled_back(provider_world: ProviderWorld) -> None:
    """The vendor issues fewer scopes than asked: the rotation fails before promotion, the new key is revoked."""
    w = provider_world
    w.config(narrow_scopes=True)
    app = w.app()
    rotation = app.db.create_rotation(
        secret=w.name, provider="p", policy="fast", trigger="manual", reason="t", actor="t"
    )
    done = app.runner("t").run(rotation.id, follow=True)
    assert done.state == "failed" and "scopes" in (done.failed_reason or "")
    assert done.promoted_at is None
    assert w.current()["api_key"] == w.first["secret"]
    ours = [k for k in w.account_keys() if k["name"] == f"rotator-{done.id}"]
    assert ours and all(k["revoked"] for k in ours)
    assert w.live_ids() == {w.first["id"]}
    answer = httpx.get(f"{w.sandbox.base_url}/v1/developer-access/api-keys", headers={"X-API-Key": w.first["secret"]})
    assert answer.status_code in (200, 403)  # authenticates (403 = lacks tokens:read, still a known key)
