"""One contract for every provider adapter, against its simulator over loopback HTTP."""

from __future__ import annotations

import pytest

from rotator.errors import CreateOutcomeUnknown, KeyRefused, ProviderUnavailable
from rotator.keys import key_name, secret
from rotator.providers.base import ApiProvider, DashboardProvider, KeyInfo, Provider
from tests.provider_world import ALL, API, BOLTLY_SCOPES, OPERATED, ProviderWorld

WELL_FORMED_UNKNOWN = {
    "brandwave": "bwpat_" + "x" * 40,
    "boltly": "sk_live_" + "x" * 32,
    "blueticks": "bt_live_" + "x" * 32,
    "texting-blue": "tb_live_" + "x" * 32,
    "goblue": "goblue_sk_" + "x" * 40,
}


def adapter(w: ProviderWorld) -> Provider:
    app = w.app()
    return app.provider_for(app.policies.secret(w.name))


@pytest.mark.parametrize("provider_world", ALL, indirect=True)
def test_probe_accepts_a_live_key_and_names_its_account(provider_world: ProviderWorld) -> None:
    result = adapter(provider_world).probe(key=secret(provider_world.first["secret"]))
    if provider_world.kind in OPERATED:
        assert provider_world.account in " ".join(result.identity.values())


@pytest.mark.parametrize("provider_world", ALL, indirect=True)
def test_probe_refuses_unknown_and_revoked_keys(provider_world: ProviderWorld) -> None:
    provider = adapter(provider_world)
    with pytest.raises(KeyRefused):
        provider.probe(key=secret(WELL_FORMED_UNKNOWN[provider_world.kind]))
    other = provider_world.mint(scopes=BOLTLY_SCOPES if provider_world.kind == "boltly" else None)
    provider_world.revoke(other["id"])
    with pytest.raises(KeyRefused):
        provider.probe(key=secret(other["secret"]))


@pytest.mark.parametrize("provider_world", ALL, indirect=True)
def test_a_429_is_waited_out_and_retried(provider_world: ProviderWorld) -> None:
    provider_world.faults(rules=[{"kind": "429"}], retry_after=1)
    before = len(provider_world.requests())
    adapter(provider_world).probe(key=secret(provider_world.first["secret"]))
    seen = provider_world.requests()[before:]
    assert [r.get("fault") for r in seen][:2] == ["429", None]


@pytest.mark.parametrize("provider_world", ALL, indirect=True)
def test_persistent_5xx_is_a_temporary_error(provider_world: ProviderWorld) -> None:
    provider_world.faults(rate=1.0, kinds=["503"])
    with pytest.raises(ProviderUnavailable):
        adapter(provider_world).probe(key=secret(provider_world.first["secret"]))


@pytest.mark.parametrize("provider_world", API, indirect=True)
def test_create_list_revoke_verify_dead(provider_world: ProviderWorld) -> None:
    provider = adapter(provider_world)
    assert isinstance(provider, ApiProvider)
    like = KeyInfo(id=provider_world.first["id"], name="", scopes=tuple(BOLTLY_SCOPES))
    created = provider.create_key(name=key_name("contract"), like=like)
    listed = {k.id: k for k in provider.list_keys()}
    assert created.id in listed
    if provider.copies_scopes:
        assert listed[created.id].scopes == tuple(sorted(BOLTLY_SCOPES))
    provider.probe(key=created.secret)
    provider.revoke_key(key_id=created.id)
    provider.revoke_key(key_id=created.id)  # already gone is success
    with pytest.raises(KeyRefused):
        provider.probe(key=created.secret)
    assert created.id not in {k.id for k in provider.list_keys()}


@pytest.mark.parametrize("provider_world", API, indirect=True)
def test_a_timed_out_create_is_unknown_and_findable_by_name(provider_world: ProviderWorld) -> None:
    provider = adapter(provider_world)
    assert isinstance(provider, ApiProvider)
    provider.list_keys()  # log in first (Boltly), so the fault hits the create
    provider_world.faults(rules=[{"kind": "timeout_after", "method": "POST", "path": "/v1/", "seconds": 2}])
    like = KeyInfo(id=provider_world.first["id"], name="", scopes=tuple(BOLTLY_SCOPES))
    with pytest.raises(CreateOutcomeUnknown):
        provider.create_key(name=key_name("lost"), like=like)
    assert key_name("lost") in {k.name for k in provider.list_keys()}


@pytest.mark.parametrize("provider_world", OPERATED, indirect=True)
def test_format_checks(provider_world: ProviderWorld) -> None:
    provider = adapter(provider_world)
    assert isinstance(provider, DashboardProvider)
    assert provider.check_format(secret(provider_world.first["secret"])) is None
    for bad in ("", "sk_live_" + "a" * 32, provider_world.first["secret"][:14], provider_world.first["secret"] + " "):
        problem = provider.check_format(secret(bad))
        assert problem is not None and provider_world.first["secret"][8:] not in problem


@pytest.mark.parametrize("provider_world", ["texting-blue"], indirect=True)
def test_a_403_still_proves_the_key_authenticates(provider_world: ProviderWorld) -> None:
    """Texting Blue: a key without team:read gets 403 on /team; it is accepted, with no team to show."""
    narrow = provider_world.mint(scopes=["messages:send"])
    assert adapter(provider_world).probe(key=secret(narrow["secret"])).identity == {}
