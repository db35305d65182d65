"""The provider contract (rotator/plugin/testing.py) for each of the five adapters against its simulator
over loopback HTTP; below, what the simulators' fault controls let us check of every adapter."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from mypy_boto3_secretsmanager import SecretsManagerClient
from rotator_sandbox.server import Running

from rotator.errors import CreateOutcomeUnknown, ProviderUnavailable
from rotator.keys import key_name, secret
from rotator.plugin.provider import ApiProvider, KeyInfo, Provider
from rotator.plugin.testing import ApiProviderContract, DashboardProviderContract, IssuedKey
from tests.support.provider_world import ALL, API, BOLTLY_SCOPES, OPERATED, ProviderWorld


def adapter(w: ProviderWorld) -> Provider:
    app = w.app()
    return app.provider_for(app.policies.secret(w.name))


class SandboxFacts:
    """Our simulators: a world per test; keys made and revoked through `/_sandbox/keys`."""

    kind: str
    scopes: tuple[str, ...] = ()

    @pytest.fixture
    def world(
        self, tmp_path: Path, sandboxes: dict[str, Running], aws_url: str, sm: SecretsManagerClient
    ) -> ProviderWorld:
        return ProviderWorld.create(tmp_path, self.kind, sandboxes=sandboxes, aws=aws_url, sm=sm)

    @pytest.fixture
    def provider(self, world: ProviderWorld) -> Provider:
        return adapter(world)

    @pytest.fixture
    def issue(self, world: ProviderWorld) -> Callable[[], IssuedKey]:
        def made() -> IssuedKey:
            key = world.mint(scopes=list(self.scopes) or None)
            return IssuedKey(id=key["id"], secret=key["secret"])

        return made

    @pytest.fixture
    def revoke(self, world: ProviderWorld) -> Callable[[str], None]:
        return world.revoke


class TestBrandwave(SandboxFacts, ApiProviderContract):
    kind = "brandwave"
    unknown_key = "bwpat_" + "x" * 40


class TestBoltly(SandboxFacts, ApiProviderContract):
    kind = "boltly"
    unknown_key = "sk_live_" + "x" * 32
    scopes = tuple(BOLTLY_SCOPES)


class TestBlueticks(SandboxFacts, DashboardProviderContract):
    kind = "blueticks"
    unknown_key = "bt_live_" + "x" * 32


class TestTextingBlue(SandboxFacts, DashboardProviderContract):
    kind = "texting-blue"
    unknown_key = "tb_live_" + "x" * 32


class TestGoBlue(SandboxFacts, DashboardProviderContract):
    kind = "goblue"
    unknown_key = "goblue_sk_" + "x" * 40


# what the simulators' controls (faults, other accounts) let us check beyond the contract ---------


@pytest.mark.parametrize("provider_world", OPERATED, indirect=True)
def test_probe_names_the_account_a_dashboard_key_belongs_to(provider_world: ProviderWorld) -> None:
    result = adapter(provider_world).probe(key=secret(provider_world.first["secret"]))
    assert provider_world.account in " ".join(result.identity.values())


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
def test_a_timed_out_create_is_unknown_and_findable_by_name(provider_world: ProviderWorld) -> None:
    provider = adapter(provider_world)
    assert isinstance(provider, ApiProvider)
    provider.list_keys()  # log in first (Boltly), so the fault hits the create
    provider_world.faults(rules=[{"kind": "timeout_after", "method": "POST", "path": "/v1/", "seconds": 2}])
    like = KeyInfo(id=provider_world.first["id"], name="", scopes=tuple(BOLTLY_SCOPES))
    with pytest.raises(CreateOutcomeUnknown):
        provider.create_key(name=key_name("lost"), like=like)
    assert key_name("lost") in {k.name for k in provider.list_keys()}


@pytest.mark.parametrize("provider_world", ["texting-blue"], indirect=True)
def test_a_403_still_proves_the_key_authenticates(provider_world: ProviderWorld) -> None:
    """Texting Blue: a key without team:read gets 403 on /team; it is accepted, with no team to show."""
    narrow = provider_world.mint(scopes=["messages:send"])
    assert adapter(provider_world).probe(key=secret(narrow["secret"])).identity == {}
