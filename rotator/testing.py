"""Contract tests that ship with the extension points (certbot's `dns_test_common` idea).

A provider adapter's tests subclass `ApiProviderContract` or `DashboardProviderContract`, give the
facts only they know — a well-formed key the vendor never issued, the scopes its keys carry — and
three fixtures against the vendor's sandbox: `provider` (the adapter, as rotator builds it from
rotator.yaml), `issue` (a live key made as a person would, in the dashboard) and `revoke` (one
revoked by id, likewise). pytest collects the inherited tests:

    class TestAcme(ApiProviderContract):
        unknown_key = "acme_" + "x" * 40

        @pytest.fixture
        def provider(self, ...) -> Provider: ...

A new adapter passes these before it is used on production keys. Needs pytest (rotator's `dev`
extra); rotator itself never imports this module.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from rotator.errors import KeyNotProven, KeyRefused
from rotator.keys import key_name, secret
from rotator.providers.base import ApiProvider, DashboardProvider, KeyInfo, Provider


@dataclass(frozen=True)
class IssuedKey:
    """A key the vendor issued: its id and its secret."""

    id: str
    secret: str


class ProviderContract:
    """Every adapter: a live key is accepted; an unknown or a revoked key is refused (KeyRefused)."""

    unknown_key: str = ""
    """Well-formed for the vendor, and never issued."""

    @pytest.fixture
    def provider(self) -> Provider:
        raise NotImplementedError("give a `provider` fixture: the adapter as rotator builds it")

    @pytest.fixture
    def issue(self) -> Callable[[], IssuedKey]:
        raise NotImplementedError("give an `issue` fixture: it makes a live key in the sandbox")

    @pytest.fixture
    def revoke(self) -> Callable[[str], None]:
        raise NotImplementedError("give a `revoke` fixture: it revokes a key by id in the sandbox")

    def test_probe_accepts_a_live_key(self, provider: Provider, issue: Callable[[], IssuedKey]) -> None:
        provider.probe(key=secret(issue().secret))

    def test_probe_refuses_a_well_formed_unknown_key(self, provider: Provider) -> None:
        assert self.unknown_key, "set unknown_key: a well-formed key the vendor never issued"
        with pytest.raises(KeyRefused):
            provider.probe(key=secret(self.unknown_key))

    def test_probe_refuses_a_revoked_key(
        self, provider: Provider, issue: Callable[[], IssuedKey], revoke: Callable[[str], None]
    ) -> None:
        key = issue()
        revoke(key.id)
        with pytest.raises(KeyRefused):
            provider.probe(key=secret(key.secret))


class ApiProviderContract(ProviderContract):
    """An adapter that makes and revokes keys through the vendor's API."""

    scopes: tuple[str, ...] = ()
    """The scopes of the keys `issue` makes: an adapter that `copies_scopes` gives them to a new key."""

    def test_create_list_revoke_then_refused(self, provider: Provider, issue: Callable[[], IssuedKey]) -> None:
        assert isinstance(provider, ApiProvider)
        old = issue()
        created = provider.create_key(name=key_name("contract"), like=KeyInfo(id=old.id, name="", scopes=self.scopes))
        listed = {k.id: k for k in provider.list_keys()}
        assert created.id in listed and listed[created.id].name == key_name("contract")
        if provider.copies_scopes:
            assert sorted(listed[created.id].scopes) == sorted(self.scopes)
        provider.probe(key=created.secret)
        provider.revoke_key(key_id=created.id)
        provider.revoke_key(key_id=created.id)  # already gone counts as revoked
        with pytest.raises(KeyRefused):
            provider.probe(key=created.secret)
        assert created.id not in {k.id for k in provider.list_keys()}

    def test_a_key_is_proven_to_be_its_own_id_and_no_other(
        self, provider: Provider, issue: Callable[[], IssuedKey]
    ) -> None:
        """Nothing is revoked unproven: prove_key tells a key from another (or says it cannot)."""
        assert isinstance(provider, ApiProvider)
        one, other = issue(), issue()
        try:
            how = provider.prove_key(key_id=one.id, key=secret(one.secret))
        except KeyNotProven:
            return  # the vendor offers no way: a person adopts keys by hand (`rotator adopt`)
        assert how
        with pytest.raises(KeyNotProven):
            provider.prove_key(key_id=other.id, key=secret(one.secret))


class DashboardProviderContract(ProviderContract):
    """An adapter for a vendor whose keys only a person makes and revokes, in its dashboard."""

    def test_the_documented_format_is_checked_without_showing_the_key(
        self, provider: Provider, issue: Callable[[], IssuedKey]
    ) -> None:
        assert isinstance(provider, DashboardProvider)
        live = issue().secret
        assert provider.check_format(secret(live)) is None
        for bad in ("", live[: provider.prefix_length], live + " ", " " + live):
            problem = provider.check_format(secret(bad))
            assert problem is not None and live[provider.prefix_length :] not in problem

    def test_instructions_name_the_key_to_make(self, provider: Provider) -> None:
        assert isinstance(provider, DashboardProvider)
        name = key_name("contract")
        assert name in provider.create_instructions(name=name, permissions=None)
