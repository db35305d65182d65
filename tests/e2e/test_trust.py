"""A hostile policy author, played as README's trust model says: he may write policy files (and
one store location of his own); rotator.yaml, the environment and the admin credentials are the
operator's. Each test runs the `rotator` command against the real sandbox and moto server and
shows the harmful effect does not happen."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import httpx
import pytest

from tests.support.provider_world import BOLTLY_SCOPES, ProviderWorld

pytestmark = pytest.mark.e2e


def authenticates(w: ProviderWorld, key: str) -> bool:
    if w.kind == "brandwave":
        answer = httpx.get(
            f"{w.sandbox.base_url}/v1/personal-access-tokens", headers={"Authorization": f"Bearer {key}"}
        )
    else:
        answer = httpx.get(f"{w.sandbox.base_url}/v1/developer-access/api-keys", headers={"X-API-Key": key})
    return answer.status_code in (200, 403)


def admin_from_env(w: ProviderWorld) -> None:
    """The operator's instance acts with a master key from the environment, as in production."""
    admin = w.mint(name="operator-admin", scopes=BOLTLY_SCOPES if w.kind == "boltly" else None)
    config = w.dir / "rotator.yaml"
    config.write_text(config.read_text().replace("admin_token: {current: true}", "admin_token: {env: RT_ADMIN}"))
    w.env["RT_ADMIN"] = admin["secret"]


def _policy(w: ProviderWorld) -> Path:
    return w.dir / "policies" / "main.yaml"


@pytest.mark.parametrize("stored", ["junk", "attackers-own-key"])
@pytest.mark.parametrize("provider_world", ["brandwave", "boltly"], indirect=True)
def test_a_foreign_key_id_in_the_store_is_never_revoked(provider_world: ProviderWorld, stored: str) -> None:
    """Attack 2: the attacker's secret pairs a junk or his own key with a production key's id:
    the production key keeps working, no key is made for the attacker, his secret is untouched."""
    w = provider_world
    if w.kind == "brandwave":
        admin_from_env(w)
    victim = w.mint(name="production-app", scopes=BOLTLY_SCOPES if w.kind == "boltly" else None)
    own = w.mint(name="attacker", scopes=BOLTLY_SCOPES if w.kind == "boltly" else None)
    key = "junk-not-a-key" if stored == "junk" else own["secret"]
    planted = {"api_key": key, "key_id": victim["id"], "provider": w.kind, "rotated_at": "2020-01-01T00:00:00Z"}
    w.sm.put_secret_value(SecretId=w.secret_id, SecretString=json.dumps(planted))
    before = w.sm.describe_secret(SecretId=w.secret_id)["VersionIdsToStages"]

    result = w.cli("rotate", w.name)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "rotator will not revoke" in result.stdout or "another key than key_id names" in result.stdout
    assert authenticates(w, victim["secret"])
    assert not [k for k in w.account_keys() if k["name"].startswith("rotator-")]
    assert victim["id"] in w.live_ids() and own["id"] in w.live_ids()
    assert w.sm.describe_secret(SecretId=w.secret_id)["VersionIdsToStages"] == before
    deletes = [r for r in w.requests() if r["method"] == "DELETE"]
    assert not [r for r in deletes if victim["id"] in r["path"]]


@pytest.mark.parametrize("provider_world", ["brandwave"], indirect=True)
def test_the_secrets_own_key_is_proven_and_rotated_with_an_env_admin(provider_world: ProviderWorld) -> None:
    """The honest case of the same setup: the stored key is the key its id names; the rotation completes."""
    w = provider_world
    admin_from_env(w)
    result = w.cli("rotate", w.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert not authenticates(w, w.first["secret"])
    assert "shown by brandwave: the user's own token list and lastUsedAt" in w.cli("history", w.name).stdout


@pytest.mark.parametrize("provider_world", ["brandwave"], indirect=True)
def test_an_unprovable_key_is_rotated_after_an_operator_adopts_it(provider_world: ProviderWorld) -> None:
    """Where the provider cannot tell, a person vouches once (`rotator adopt`, audited); then it rotates."""
    w = provider_world
    admin_from_env(w)
    adopted = w.cli("adopt", w.name, "--reason", "checked the key id in the Brandwave console")
    assert adopted.returncode == 0, adopted.stdout + adopted.stderr
    result = w.cli("rotate", w.name)
    assert result.returncode == 0, result.stdout + result.stderr
    history = w.cli("history", w.name).stdout
    assert "key.adopted" in history and "adopted by cli:" in history


@pytest.mark.parametrize("provider_world", ["brandwave"], indirect=True)
def test_a_command_hook_in_a_policy_file_is_refused(provider_world: ProviderWorld, tmp_path: Path) -> None:
    """Attack 1: a policy file cannot run a command; only rotator.yaml defines commands, by name."""
    w = provider_world
    loot = tmp_path / "loot"
    text = _policy(w).read_text() + (
        "    consumers:\n      - name: api\n"
        f"        reload: {{command: [/bin/sh, -c, \"tr '\\\\0' '\\\\n' < /proc/$PPID/environ > {loot}\"]}}\n"
    )
    _policy(w).write_text(text)
    for args in (("validate", "--offline"), ("rotate", w.name)):
        result = w.cli(*args)
        assert result.returncode == 2, result.stdout + result.stderr
        assert f"{_policy(w)}:" in result.stderr and "hooks.commands" in result.stderr
    assert not loot.exists()


@pytest.mark.parametrize("provider_world", ["brandwave"], indirect=True)
def test_a_named_command_hook_sees_neither_credentials_nor_the_fingerprint(
    provider_world: ProviderWorld, tmp_path: Path
) -> None:
    """An operator-defined hook runs with a bare environment: no admin token, no expected fingerprint."""
    w = provider_world
    admin_from_env(w)
    dump = tmp_path / "env.txt"
    config = w.dir / "rotator.yaml"
    config.write_text(
        config.read_text()
        + "hooks:\n  commands:\n"
        + f"    dump: {{command: [/bin/sh, -c, 'env > {dump}']}}\n"
        + "    echo-fp: {command: [/bin/sh, -c, 'echo $ROTATOR_FINGERPRINT']}\n"
    )
    text = (
        _policy(w)
        .read_text()
        .replace(
            "cutover: {min_soak: 0s}", "cutover: {min_soak: 0s, require: [consumers], max_wait: 1s, on_timeout: hold}"
        )
    )
    text += "    consumers:\n      - {name: api, reload: {command: dump}, confirm: {command: echo-fp}}\n"
    _policy(w).write_text(text)
    result = w.cli("rotate", w.name)
    assert result.returncode == 5, result.stdout + result.stderr  # held: the echo confirmed nothing
    seen = dump.read_text()
    assert w.env["RT_ADMIN"] not in seen and "RT_ADMIN" not in seen and "FINGERPRINT" not in seen
    assert w.current()["api_key"] not in seen
    assert authenticates(w, w.first["secret"])  # the gate stayed shut: the old key lives


@pytest.mark.parametrize("provider_world", ["brandwave"], indirect=True)
def test_an_echoing_endpoint_does_not_open_the_gate(provider_world: ProviderWorld) -> None:
    """Attack 3: a confirm endpoint that reflects its request cannot confirm: it is never sent the fingerprint."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    from rotator.runtime.background_http import serve_app

    async def echo(request: Request) -> Response:
        body = (await request.body()).decode()
        return JSONResponse({"you_sent": body, "query": str(request.url.query), "headers": dict(request.headers)})

    served = serve_app(
        Starlette(routes=[Route("/echo", echo, methods=["GET", "POST"])]), host="127.0.0.1", port=0, name="echo"
    )
    try:
        w = provider_world
        config = w.dir / "rotator.yaml"
        config.write_text(config.read_text() + "hooks:\n  allowed_hosts: [127.0.0.1]\n")
        text = (
            _policy(w)
            .read_text()
            .replace(
                "cutover: {min_soak: 0s}",
                "cutover: {min_soak: 0s, require: [consumers], max_wait: 1s, on_timeout: hold}",
            )
        )
        text += (
            "    consumers:\n      - name: api\n"
            f"        reload: {{http: {{method: POST, url: '{served.url}/echo'}}}}\n"
            f"        confirm: {{http: {{method: POST, url: '{served.url}/echo'}}}}\n"
        )
        _policy(w).write_text(text)
        result = w.cli("rotate", w.name)
        assert result.returncode == 5, result.stdout + result.stderr
        assert "not yet on the new key: api" in result.stdout
        assert authenticates(w, w.first["secret"])
    finally:
        served.stop()


@pytest.mark.parametrize(
    ("hook", "complaint"),
    [
        ("{http: {url: 'http://169.254.169.254/latest/meta-data/iam/'}}", "'169.254.169.254' is not allowed"),
        ("{http: {url: 'http://127.0.0.1:9/admin'}}", "'127.0.0.1' is not allowed"),
        ("{http: {url: 'https://support.internal/x', headers: {X-T: {env: RT_ADMIN}}}}", "credential"),
        ("{http: {url: 'https://support.internal/x', headers: {X-T: {credential: admin}}}}", "unknown credential"),
        ("{http: {url: 'https://ok@169.254.169.254/'}}", "no user or password"),
    ],
    ids=["metadata", "loopback", "env-header", "unknown-credential", "userinfo"],
)
@pytest.mark.parametrize("provider_world", ["brandwave"], indirect=True)
def test_http_hooks_reach_only_allowed_hosts_with_named_credentials(
    provider_world: ProviderWorld, hook: str, complaint: str
) -> None:
    """Attack 4: SSRF to cloud metadata or an internal admin API, and credentials written in git, are refused."""
    w = provider_world
    config = w.dir / "rotator.yaml"
    config.write_text(config.read_text() + "hooks:\n  allowed_hosts: ['*.internal']\n")
    _policy(w).write_text(_policy(w).read_text() + f"    consumers:\n      - {{name: api, reload: {hook}}}\n")
    result = w.cli("validate", "--offline")
    assert result.returncode == 2 and f"{_policy(w)}:" in result.stderr and complaint in result.stderr, result.stderr


@pytest.mark.parametrize(
    "path", ["../../sys/policy/x", "app/../../sys/policy/x", "app/%2e%2e/sys", "app//x", "app/./x", "a?b", "a#b"]
)
@pytest.mark.parametrize("provider_world", ["brandwave"], indirect=True)
def test_vault_paths_that_escape_are_refused(provider_world: ProviderWorld, path: str) -> None:
    """Attack 5: a KV path that a client would normalise or re-interpret is refused at validate, with its line."""
    w = provider_world
    config = w.dir / "rotator.yaml"
    config.write_text(
        config.read_text()
        .replace('grants: [{store: aws, secret_id: "test/*"}]', 'grants: [{store: vault, path: "*"}]')
        .replace("stores:\n", "stores:\n  vault: {type: vault, url: 'http://127.0.0.1:9'}\n")
    )
    text = _policy(w).read_text().replace(f"{{aws: {{secret_id: {w.secret_id}}}}}", f"{{vault: {{path: '{path}'}}}}")
    _policy(w).write_text(text)
    result = w.cli("validate", "--offline")
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"{_policy(w)}:7:" in result.stderr


@pytest.mark.parametrize("provider_world", ["brandwave"], indirect=True)
def test_a_location_outside_the_grant_is_refused_before_anything_runs(provider_world: ProviderWorld) -> None:
    """A policy naming a store location its provider instance is not granted: refused, nothing sent."""
    w = provider_world
    other = f"prod/payments/{uuid.uuid4().hex[:6]}"
    w.sm.create_secret(Name=other, SecretString=json.dumps({"api_key": w.first["secret"], "key_id": w.first["id"]}))
    _policy(w).write_text(_policy(w).read_text().replace(w.secret_id, other))
    before = len(w.requests())
    for args in (("validate", "--offline"), ("rotate", w.name)):
        result = w.cli(*args)
        assert result.returncode == 2, result.stdout + result.stderr
        assert f"{_policy(w)}:7:" in result.stderr and "may not serve aws:" + other in result.stderr
    assert len(w.requests()) == before
    assert len(w.sm.describe_secret(SecretId=other)["VersionIdsToStages"]) == 1
