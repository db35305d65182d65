"""Every provider through the `rotator` command, the operator played through the simulators."""

from __future__ import annotations

import signal
import uuid

import httpx
import pytest

from tests.support.provider_world import API, BOLTLY_SCOPES, OPERATED, ProviderWorld

pytestmark = pytest.mark.e2e


def assert_rotated(w: ProviderWorld) -> None:
    """Exactly one live key (the one applications read), and the old one refused."""
    current = w.current()
    assert current["api_key"] != w.first["secret"]
    live = [k for k in w.account_keys() if not k["revoked"]]
    assert len(live) == 1, live
    assert w.first["id"] not in {k["id"] for k in live}


def no_key_leaked(w: ProviderWorld, *outputs: str) -> None:
    text = "".join(outputs)
    for value in (w.first["secret"], w.current()["api_key"]):
        assert value not in text
    blob = b"".join(p.read_bytes() for p in w.dir.glob("state.db*"))
    assert w.first["secret"].encode() not in blob and w.current()["api_key"].encode() not in blob


@pytest.mark.parametrize("provider_world", API, indirect=True)
def test_api_managed_rotation(provider_world: ProviderWorld) -> None:
    w = provider_world
    result = w.cli("--log-level", "debug", "rotate", w.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert_rotated(w)
    no_key_leaked(w, result.stdout, result.stderr)


@pytest.mark.parametrize("provider_world", OPERATED, indirect=True)
def test_operator_flow_end_to_end(provider_world: ProviderWorld) -> None:
    """rotate → waits → the operator makes a key → supply via stdin → waits → old key revoked → completed."""
    w = provider_world
    asked = w.cli("--log-level", "debug", "rotate", w.name)
    assert asked.returncode == 4, asked.stdout + asked.stderr
    rotation_id = w.active_rotation()
    assert f"rotator-{rotation_id}" in asked.stdout and f"rotator supply {rotation_id}" in asked.stdout

    status = w.cli("status")
    assert "waiting on a person:" in status.stdout and rotation_id in status.stdout and "since" in status.stdout

    made = w.mint(name=f"rotator-{rotation_id}")
    supplied = w.cli("--log-level", "debug", "supply", rotation_id, input=made["secret"] + "\n")
    assert supplied.returncode == 4, supplied.stdout + supplied.stderr
    assert "awaiting_revocation" in supplied.stdout and w.first["secret"][:12] in supplied.stdout
    assert w.current()["api_key"] == made["secret"]

    w.revoke(w.first["id"])
    done = w.cli("rotate", w.name)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "completed" in done.stdout
    assert_rotated(w)
    no_key_leaked(w, asked.stdout, asked.stderr, supplied.stdout, supplied.stderr, done.stdout, done.stderr)


@pytest.mark.parametrize("provider_world", OPERATED, indirect=True)
def test_bad_keys_are_refused_with_the_reason_and_a_good_one_still_completes(provider_world: ProviderWorld) -> None:
    w = provider_world
    assert w.cli("rotate", w.name).returncode == 4
    rotation_id = w.active_rotation()
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
        result = w.cli("supply", rotation_id, input=key + "\n")
        assert result.returncode == 2, result.stdout + result.stderr
        assert reason in result.stderr and "still waits" in result.stderr
        assert key not in result.stdout + result.stderr
    assert w.current()["api_key"] == w.first["secret"]
    good = w.mint()
    assert w.cli("supply", rotation_id, input=good["secret"] + "\n").returncode == 4
    w.revoke(w.first["id"])
    assert w.cli("rotate", w.name).returncode == 0
    history = w.cli("history", w.name).stdout
    assert history.count("supply.rejected") == len(cases)


@pytest.mark.parametrize("provider_world", ["goblue"], indirect=True)
def test_goblue_keys_never_travel_in_a_url(provider_world: ProviderWorld) -> None:
    w = provider_world
    assert w.cli("rotate", w.name).returncode == 4
    made = w.mint()
    w.cli("supply", w.active_rotation(), input=made["secret"] + "\n")
    w.revoke(w.first["id"])
    assert w.cli("rotate", w.name).returncode == 0
    for request in w.requests():
        assert "goblue_sk_" not in request["path"] + request["query"]
        if request["path"].startswith("/v1/forms"):
            assert request["headers"]["authorization"].startswith("Bearer goblue_sk_")


@pytest.mark.parametrize("provider_world", ["boltly"], indirect=True)
def test_boltly_new_key_has_the_old_keys_scopes_and_refresh_tokens_are_saved(provider_world: ProviderWorld) -> None:
    w = provider_world
    w.config(access_ttl=1)  # JWTs expire during the rotation: refreshes happen mid-way
    seen_before = len(w.requests())  # the simulator is shared by the tests a worker runs
    policy = w.dir / "policies" / "main.yaml"
    policy.write_text(policy.read_text().replace("min_soak: 0s", "min_soak: 2s"))
    result = w.cli("rotate", w.name)
    assert result.returncode == 0, result.stdout + result.stderr
    new = next(k for k in w.account_keys() if not k["revoked"])
    assert sorted(new["scopes"]) == sorted(BOLTLY_SCOPES)
    saved = (w.dir / "boltly.refresh").read_text().strip()
    assert saved.startswith("rt_")
    assert (w.dir / "boltly.refresh").stat().st_mode & 0o077 == 0
    ours = w.requests()[seen_before:]
    logins = [r for r in ours if r["path"] == "/v1/auth/login"]
    refreshes = [r for r in ours if r["path"] == "/v1/auth/refresh" and r.get("status") == 200]
    assert refreshes, "the short-lived JWT should have been refreshed"
    # the saved refresh token is the live one
    answer = httpx.post(f"{w.sandbox.base_url}/v1/auth/refresh", json={"refresh_token": saved})
    assert answer.status_code == 200 and len(logins) >= 1


@pytest.mark.parametrize("point", ["boltly-before-refresh-saved", "boltly-after-refresh-saved"])
@pytest.mark.parametrize("provider_world", ["boltly"], indirect=True)
def test_boltly_killed_around_a_refresh_does_not_lose_access(provider_world: ProviderWorld, point: str) -> None:
    """Killed right after a refresh (before or after saving): the next run still gets in, and completes."""
    w = provider_world
    assert w.cli("rotate", w.name, "--detach", env={"ROTATOR_FAILPOINTS": "after:creating"}).returncode == -9
    w.config(access_ttl=0)  # every JWT is dead at once: the next run must refresh
    crashed = w.cli("rotate", w.name, env={"ROTATOR_FAILPOINTS": point})
    assert crashed.returncode == -signal.SIGKILL, crashed.stdout + crashed.stderr
    w.config(access_ttl=900)
    resumed = w.cli("rotate", w.name)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert_rotated(w)


@pytest.mark.parametrize("provider_world", ["boltly", "blueticks"], indirect=True)
def test_under_faults_every_rotation_completes_or_rolls_back(provider_world: ProviderWorld) -> None:
    """429 with Retry-After, 5xx and timeouts on 30% of requests."""
    w = provider_world
    w.faults(rate=0.3, kinds=["429", "500", "timeout"], seed=11, hang_seconds=1.5)
    result = w.cli("rotate", w.name)
    if w.kind in OPERATED:
        assert result.returncode in (1, 4), result.stdout + result.stderr
        if result.returncode == 4:
            made = w.mint()
            for _ in range(5):  # the operator tries again when a check could not reach the provider
                supplied = w.cli("supply", w.active_rotation(), input=made["secret"] + "\n")
                if supplied.returncode != 1:
                    break
            w.faults(clear=True)
            w.revoke(w.first["id"])
            result = w.cli("rotate", w.name)
    w.faults(clear=True)
    assert result.returncode in (0, 1), result.stdout + result.stderr
    live = [k for k in w.account_keys() if not k["revoked"]]
    assert len(live) == 1
    if result.returncode == 0:
        assert_rotated(w)
    else:
        assert w.current()["api_key"] == w.first["secret"] and live[0]["id"] == w.first["id"]


@pytest.mark.parametrize("provider_world", ["boltly"], indirect=True)
def test_a_revocation_still_in_the_key_cache_is_probed_until_refused(provider_world: ProviderWorld) -> None:
    """Boltly's key cache keeps a revoked key alive for a while: the rotation probes until 401, then completes."""
    w = provider_world
    w.config(revocation_delay=1.5)
    result = w.cli("rotate", w.name)
    assert result.returncode == 0, result.stdout + result.stderr
    history = w.cli("history", w.name).stdout
    assert "old key" in history and "still accepted; probing until refused" in history
    assert_rotated(w)


@pytest.mark.parametrize("provider_world", ["boltly"], indirect=True)
def test_a_revocation_that_never_takes_effect_holds_the_rotation(provider_world: ProviderWorld) -> None:
    """Still accepted past verify_deadline: held and reported (exit 5), and completed once the cache lets go."""
    w = provider_world
    w.config(revocation_delay=8)
    held = w.cli("rotate", w.name)
    assert held.returncode == 5, held.stdout + held.stderr
    assert "HELD in verifying" in held.stdout and "still accepted" in held.stdout
    w.config(revocation_delay=0)
    done = w.cli("rotate", w.name)
    assert done.returncode == 0, done.stdout + done.stderr
    assert_rotated(w)


@pytest.mark.parametrize("provider_world", ["blueticks"], indirect=True)
def test_a_key_that_cannot_be_checked_now_leaves_the_rotation_waiting_on_the_person(
    provider_world: ProviderWorld,
) -> None:
    """The provider does not answer the key's probe: nothing is stored, the command says the
    rotation still waits for a key (exit 4, not 1 "failed"), and the same key is taken later."""
    w = provider_world
    assert w.cli("rotate", w.name).returncode == 4
    rotation_id = w.active_rotation()
    made = w.mint()
    w.faults(rules=[{"kind": "503", "method": "GET", "path": "/v1/ping", "times": 50}], retry_after=0)
    result = w.cli("supply", rotation_id, input=made["secret"] + "\n")
    assert result.returncode == 4, result.stdout + result.stderr
    assert "still waits for a key" in result.stderr and made["secret"] not in result.stdout + result.stderr
    assert w.current()["api_key"] == w.first["secret"]
    w.faults(clear=True)
    assert w.cli("supply", rotation_id, input=made["secret"] + "\n").returncode == 4  # now waits for the revocation
    assert w.current()["api_key"] == made["secret"]
