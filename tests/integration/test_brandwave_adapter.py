"""The Brandwave adapter against the sandbox over loopback HTTP."""

import httpx
import pytest
from pydantic import SecretStr

from rotator.errors import CreateOutcomeUnknown, KeyRefused
from rotator.keys import secret
from rotator.plugin.http import HttpCore
from rotator.plugin.http import read_vendor_error as read_error
from rotator.providers.brandwave import PATH, Brandwave


@pytest.fixture
def admin(brandwave: str) -> SecretStr:
    return secret(httpx.post(f"{brandwave}/_sandbox/keys", json={"name": "admin"}).json()["secret"])


def adapter(base_url: str, admin: SecretStr, timeout: float = 2.0) -> Brandwave:
    http = HttpCore(provider="bw", base_url=base_url, timeout=timeout, read_error=read_error)
    return Brandwave(http=http, admin_token=lambda: admin)


def test_create_list_probe_revoke_verify_dead(brandwave: str, admin: SecretStr) -> None:
    bw = adapter(brandwave, admin)
    created = bw.create_key(name="rotator-contract", like=None)
    assert created.id in {k.id for k in bw.list_keys()}
    bw.probe(key=created.secret)
    bw.revoke_key(key_id=created.id)
    with pytest.raises(KeyRefused):
        bw.probe(key=created.secret)
    assert created.id not in {k.id for k in bw.list_keys()}


def test_revoking_twice_is_success(brandwave: str, admin: SecretStr) -> None:
    bw = adapter(brandwave, admin)
    created = bw.create_key(name="rotator-twice", like=None)
    bw.revoke_key(key_id=created.id)
    bw.revoke_key(key_id=created.id)


def test_list_follows_pages(brandwave: str, admin: SecretStr) -> None:
    bw = adapter(brandwave, admin)
    ids = {bw.create_key(name=f"rotator-page-{i}", like=None).id for i in range(3)}
    import rotator.providers.brandwave as module

    original, module.PAGE_SIZE = module.PAGE_SIZE, 2
    try:
        assert ids <= {k.id for k in bw.list_keys()}
    finally:
        module.PAGE_SIZE = original


def test_last_used_is_read_from_the_list(brandwave: str, admin: SecretStr) -> None:
    bw = adapter(brandwave, admin)
    created = bw.create_key(name="rotator-used", like=None)
    assert next(k for k in bw.list_keys() if k.id == created.id).last_used_at is None
    bw.probe(key=created.secret)
    assert next(k for k in bw.list_keys() if k.id == created.id).last_used_at is not None


def test_a_create_that_times_out_is_reported_unknown_and_sent_once(brandwave: str, admin: SecretStr) -> None:
    httpx.post(
        f"{brandwave}/_sandbox/faults",
        json={"rules": [{"kind": "timeout_after", "method": "POST", "path": PATH, "seconds": 3}]},
    )
    bw = adapter(brandwave, admin, timeout=0.5)
    before = len([r for r in httpx.get(f"{brandwave}/_sandbox/requests").json()["requests"] if r["method"] == "POST"])
    with pytest.raises(CreateOutcomeUnknown):
        bw.create_key(name="rotator-timeout", like=None)
    after = len([r for r in httpx.get(f"{brandwave}/_sandbox/requests").json()["requests"] if r["method"] == "POST"])
    assert after - before == 1
    assert "rotator-timeout" in {k.name for k in bw.list_keys()}


def test_unknown_token_is_refused(brandwave: str, admin: SecretStr) -> None:
    with pytest.raises(KeyRefused, match="HTTP 401, unauthorized"):
        adapter(brandwave, admin).probe(key=secret("bwpat_notarealtoken000000"))
