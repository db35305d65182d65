"""Boltly's refresh token is spent by every refresh: processes sharing one Boltly instance (a
rotation and `reconcile`s at once, as a daemon and a person at 3 a.m. would) refresh one at a
time, each with the newest token, so none is locked out — with the token in a file on one host, or
in a secret of the store that replicas on many hosts share (replaced by compare-and-set)."""

from __future__ import annotations

import json
import threading

import httpx
import pytest

from tests.support.provider_world import ProviderWorld

pytestmark = pytest.mark.e2e


def _keep_token_in(w: ProviderWorld, where: str) -> str:
    """rotator.yaml without a password (a lost refresh token would be an error, not a quiet login);
    the token in a file, or in an AWS secret made beforehand. Returns the refresh token's place."""
    config = w.dir / "rotator.yaml"
    text = config.read_text()
    text = "\n".join(line for line in text.splitlines() if "password:" not in line) + "\n"
    if where == "store":
        secret_id = f"test/{w.name}-refresh"
        w.sm.create_secret(Name=secret_id, SecretString="placeholder")
        text = text.replace(
            f"refresh_token_file: {w.dir}/boltly.refresh", f"refresh_token_store: {{aws: {{secret_id: {secret_id}}}}}"
        )
        place = secret_id
    else:
        place = str(w.dir / "boltly.refresh")
    config.write_text(text)
    password = (w.dir / "boltly.password").read_text()
    logged_in = w.cli("login", "p", input=password)
    assert logged_in.returncode == 0 and place in logged_in.stdout, logged_in.stdout + logged_in.stderr
    return place


def _saved(w: ProviderWorld, where: str, place: str) -> str:
    if where == "store":
        got = w.sm.get_secret_value(SecretId=place, VersionStage="AWSCURRENT")
        return str(json.loads(got["SecretString"])["api_key"])
    return (w.dir / "boltly.refresh").read_text().strip()


@pytest.mark.parametrize("where", ["file", "store"])
@pytest.mark.parametrize("provider_world", ["boltly"], indirect=True)
def test_processes_refreshing_at_once_never_spend_each_others_token(provider_world: ProviderWorld, where: str) -> None:
    w = provider_world
    place = _keep_token_in(w, where)
    # JWTs that live 20 s: rotator renews any with less than 30 s left, so every call to Boltly
    # refreshes first; yet a JWT never expires between its refresh and its use, however slow the
    # machine (with a 1 s life, a loaded machine saw 401s on calls made just after a refresh)
    w.config(access_ttl=20)
    try:
        _refresh_from_three_processes(w, where, place)
    finally:
        w.config(access_ttl=900)  # the simulator outlives this test: the next one gets the default


def _refresh_from_three_processes(w: ProviderWorld, where: str, place: str) -> None:
    # the simulator is shared by the tests a worker runs: only this test's requests count
    seen_before = len(w.requests())

    failures: list[str] = []

    def reconcile_again_and_again() -> None:
        for _ in range(6):
            done = w.cli("reconcile")
            # 1 is findings too: an error is told by its message
            if done.returncode not in (0, 1) or "error:" in done.stderr:
                failures.append(done.stdout + done.stderr)

    others = [threading.Thread(target=reconcile_again_and_again) for _ in range(2)]
    for t in others:
        t.start()
    rotated = w.cli("rotate", w.name)
    for t in others:
        t.join(timeout=300)

    assert rotated.returncode == 0, rotated.stdout + rotated.stderr
    assert not failures, failures[0]
    ours = w.requests()[seen_before:]
    refreshes = [r for r in ours if r["path"] == "/v1/auth/refresh"]
    assert len(refreshes) >= 10 and all(r.get("status") == 200 for r in refreshes), [r.get("status") for r in refreshes]
    assert not any(r["path"] == "/v1/auth/login" for r in ours)  # nobody was locked out
    answer = httpx.post(f"{w.sandbox.base_url}/v1/auth/refresh", json={"refresh_token": _saved(w, where, place)})
    assert answer.status_code == 200  # the saved token is the live one


def test_a_store_keeper_refuses_to_overwrite_a_token_replaced_meanwhile(aws_url: str, sm: object) -> None:
    """The compare-and-set: a keeper that read version A does not replace version B."""
    import uuid

    from pydantic import SecretStr

    from rotator.errors import RotationError
    from rotator.providers.boltly_session import StoreKeeper
    from rotator.stores.aws import AwsSecretsManager

    store = AwsSecretsManager(region="us-east-1", endpoint_url=aws_url)
    secret_id = f"test/refresh-{uuid.uuid4().hex[:8]}"
    store._client.create_secret(Name=secret_id, SecretString="placeholder")
    first, second = (StoreKeeper(store, secret_id, where=f"aws:{secret_id}") for _ in range(2))
    assert first.load() is not None and second.load() is not None  # both read the placeholder
    first.save(SecretStr("rt_from_first"))
    with pytest.raises(RotationError, match="replaced by another process"):
        second.save(SecretStr("rt_from_second"))
    assert (loaded := second.load()) is not None and loaded.get_secret_value() == "rt_from_first"
    second.save(SecretStr("rt_from_second"))  # after reading the newest, it may replace it
    assert (loaded := first.load()) is not None and loaded.get_secret_value() == "rt_from_second"


@pytest.mark.parametrize("provider_world", ["boltly"], indirect=True)
def test_a_refresh_answered_after_the_provider_timeout_is_still_waited_for(provider_world: ProviderWorld) -> None:
    """A refresh spends the token it sends: its answer holds the only copy of the next one, so
    giving up on it after the usual timeout (1 s here) would lose the token for good."""
    w = provider_world
    place = _keep_token_in(w, "file")
    w.config(access_ttl=1)
    w.faults(rules=[{"kind": "latency", "method": "POST", "path": "/v1/auth/refresh", "seconds": 2.5}])
    reconciled = w.cli("reconcile")
    assert reconciled.returncode in (0, 1), reconciled.stdout + reconciled.stderr
    assert "no usable refresh token" not in reconciled.stdout + reconciled.stderr
    w.config(access_ttl=900)
    answer = httpx.post(f"{w.sandbox.base_url}/v1/auth/refresh", json={"refresh_token": _saved(w, "file", place)})
    assert answer.status_code == 200  # the token the slow answer carried was saved
