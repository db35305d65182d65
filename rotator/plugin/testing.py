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

A store type's tests subclass `StoreContract` likewise, with a `case` fixture (a secret in the
store and how applications see it). A new adapter passes these before it touches production keys.
Needs pytest (rotator's `dev` extra); rotator itself never imports this module.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest

from rotator.errors import KeyNotProven, KeyRefused, StoreConflict
from rotator.keys import key_name, secret
from rotator.plugin.provider import ApiProvider, DashboardProvider, KeyInfo, Provider
from rotator.plugin.store import Store, StoredValue


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


@dataclass
class StoreCase:
    """A secret in the store under test, and how an application and other people see it."""

    store: Store
    location: str
    """Holds `{"api_key": "old-key-value", "key_id": "old"}` and one metadata entry `team: support`
    set by someone else."""
    app_read: Callable[[], dict[str, Any]]
    """What an application reads as current."""
    foreign_write: Callable[[dict[str, Any]], None]
    """Someone else writes the secret."""
    metadata: Callable[[], dict[str, str]]
    """The secret's metadata, rotator's entries prefixed `rotator:`."""
    history: Callable[[], int]
    """How many versions carry a value."""


def _value(key: str, rotation_id: str) -> StoredValue:
    return StoredValue.new(api_key=secret(key), key_id=f"id-{key}", provider="brandwave", rotation_id=rotation_id)


def _token() -> str:
    return str(uuid.uuid4())


class StoreContract:
    """Every store: staging never touches what applications read, writes are idempotent on their
    token, promotion is a compare-and-set, metadata is merged. A subclass gives a `case` fixture."""

    @pytest.fixture
    def case(self) -> StoreCase:
        raise NotImplementedError("give a `case` fixture: a StoreCase in the store under test")

    def test_stage_twice_with_the_same_token_writes_once(self, case: StoreCase) -> None:
        t = _token()
        before = case.history()
        case.store.stage(location=case.location, token=t, value=_value("new-key-value", t))
        case.store.stage(location=case.location, token=t, value=_value("new-key-value", t))
        assert case.store.pending_tokens(location=case.location) == [t]
        pending = case.store.read_pending(location=case.location, token=t)
        assert pending is not None and pending.api_key.get_secret_value() == "new-key-value"
        assert case.history() - before <= 1  # AWS counts the pending version; Vault keeps it elsewhere

    def test_stage_refuses_a_different_key_under_the_same_token(self, case: StoreCase) -> None:
        t = _token()
        case.store.stage(location=case.location, token=t, value=_value("new-key-value", t))
        with pytest.raises(StoreConflict):
            case.store.stage(location=case.location, token=t, value=_value("other-key-value", t))

    def test_the_current_value_is_never_a_pending_key(self, case: StoreCase) -> None:
        t = _token()
        case.store.stage(location=case.location, token=t, value=_value("new-key-value", t))
        assert case.app_read()["api_key"] == "old-key-value"
        current = case.store.read_current(location=case.location)
        assert current is not None and current.value.api_key.get_secret_value() == "old-key-value"

    def test_promote_is_idempotent_and_keeps_the_previous_readable(self, case: StoreCase) -> None:
        old = case.store.read_current(location=case.location)
        assert old is not None
        t = _token()
        case.store.stage(location=case.location, token=t, value=_value("new-key-value", t))
        case.store.promote(location=case.location, token=t, expected_current=old.version_id)
        versions = case.history()
        case.store.promote(location=case.location, token=t, expected_current=old.version_id)
        assert case.history() == versions
        assert case.app_read()["api_key"] == "new-key-value"
        previous = case.store.read_version(location=case.location, version_id=old.version_id)
        assert previous is not None and previous.api_key.get_secret_value() == "old-key-value"
        assert case.store.pending_tokens(location=case.location) == []

    def test_promote_refuses_to_overwrite_someone_elses_write(self, case: StoreCase) -> None:
        old = case.store.read_current(location=case.location)
        assert old is not None
        t = _token()
        case.store.stage(location=case.location, token=t, value=_value("new-key-value", t))
        case.foreign_write({"api_key": "someone-else", "key_id": "x"})
        with pytest.raises(StoreConflict, match="someone else"):
            case.store.promote(location=case.location, token=t, expected_current=old.version_id)
        assert case.app_read()["api_key"] == "someone-else"

    def test_rollback_clears_pending_and_is_idempotent(self, case: StoreCase) -> None:
        t = _token()
        case.store.stage(location=case.location, token=t, value=_value("new-key-value", t))
        case.store.clear_pending(location=case.location, token=t)
        case.store.clear_pending(location=case.location, token=t)
        assert case.store.pending_tokens(location=case.location) == []
        assert case.store.read_pending(location=case.location, token=t) is None
        assert case.app_read()["api_key"] == "old-key-value"

    def test_metadata_is_merged_not_replaced(self, case: StoreCase) -> None:
        case.store.set_metadata(location=case.location, metadata={"fingerprint": "sha256:abc", "rotation-id": "r1"})
        case.store.set_metadata(location=case.location, metadata={"policy": "quarterly"})
        assert case.metadata() == {
            "team": "support",
            "rotator:fingerprint": "sha256:abc",
            "rotator:rotation-id": "r1",
            "rotator:policy": "quarterly",
        }

    def test_a_missing_secret_reads_as_none(self, case: StoreCase) -> None:
        location = case.location.rsplit("/", 1)[0] + "/does-not-exist"
        assert case.store.read_current(location=location) is None
        assert case.store.pending_tokens(location=location) == []

    def test_a_promoted_value_reads_back_as_written_in_the_documented_form(self, case: StoreCase) -> None:
        """docs/stored-value.md: the five fields, `rotated_at` an ISO 8601 time in UTC."""
        old = case.store.read_current(location=case.location)
        assert old is not None
        t = _token()
        value = _value("new-key-value", t)
        case.store.stage(location=case.location, token=t, value=value)
        case.store.promote(location=case.location, token=t, expected_current=old.version_id)
        read = case.app_read()
        assert set(read) == {"api_key", "key_id", "provider", "rotated_at", "rotation_id"}
        assert datetime.fromisoformat(read["rotated_at"]).utcoffset() == timedelta(0)
        current = case.store.read_current(location=case.location)
        assert current is not None and current.value == value

    def test_an_access_check_proves_every_permission_and_changes_nothing(self, case: StoreCase) -> None:
        """`rotator check` and the preflight of `rotate`: with every permission granted, each is
        reported allowed, and the secret, its versions and its metadata are as they were."""
        before = (case.app_read(), case.history(), case.metadata())
        checked = case.store.check_access(location=case.location)
        assert checked and [why for _, why in checked] == [None] * len(checked)
        assert (case.app_read(), case.history(), case.metadata()) == before
        assert case.store.pending_tokens(location=case.location) == []

    def test_many_current_values_read_at_once(self, case: StoreCase) -> None:
        missing = case.location.rsplit("/", 1)[0] + "/does-not-exist"
        found = case.store.read_current_many([case.location, missing])
        assert found[missing] is None
        current = found[case.location]
        assert current is not None and current.value.api_key.get_secret_value() == "old-key-value"
