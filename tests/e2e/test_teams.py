"""Two teams sharing one rotator, played as the trust model says: the operator owns rotator.yaml;
team A and team B each write only their own policy file. Each test plays a member of team B and
runs the `rotator` command against the real Brandwave sandbox and moto server, showing that the
harmful effect on team A does not happen (and that A's own use of its allowances still works)."""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from mypy_boto3_secretsmanager import SecretsManagerClient
from rotator_sandbox.server import Running
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from rotator.runtime.background_http import Served, serve_app
from tests.support.sandbox_world import SandboxWorld

pytestmark = pytest.mark.e2e

MOTO_ACCOUNT = "123456789012"
A_TOKEN = "teama-hook-token-" + "x" * 16


@dataclass
class Consumer:
    """An application: it loads the current key on reload and reports its fingerprint on confirm;
    it records every request it gets, headers included."""

    sm: SecretsManagerClient
    secret_id: str = ""
    key: str = ""
    seen: list[dict[str, Any]] = field(default_factory=list)

    async def reload(self, request: Request) -> Response:
        self.seen.append({"path": "/reload", "headers": dict(request.headers)})
        got = self.sm.get_secret_value(SecretId=self.secret_id, VersionStage="AWSCURRENT")
        self.key = json.loads(got["SecretString"])["api_key"]
        return PlainTextResponse("ok")

    async def confirm(self, request: Request) -> Response:
        self.seen.append({"path": "/confirm", "headers": dict(request.headers)})
        return PlainTextResponse("sha256:" + hashlib.sha256(self.key.encode()).hexdigest()[:12])


def _serve(consumer: Consumer, name: str) -> Served:
    routes = [Route("/reload", consumer.reload, methods=["POST"]), Route("/confirm", consumer.confirm)]
    return serve_app(Starlette(routes=routes), host="127.0.0.1", port=0, name=name)


@dataclass
class Teams(SandboxWorld):
    dir: Path
    sandbox: Running
    sm: SecretsManagerClient
    aws: str
    account: str
    a_key: dict[str, Any]
    a_arn: str
    a_consumer: Consumer
    b_consumer: Consumer
    a_served: Served
    b_served: Served
    marker: Path
    tag: str

    @property
    def control_url(self) -> str:
        return self.sandbox.base_url

    def extra_env(self) -> dict[str, str]:
        return {"TEAMA_TOKEN": A_TOKEN}

    def write_config(self, *, teams: bool = True, extra: str = "") -> None:
        arn = f"arn:aws:secretsmanager:us-east-1:{MOTO_ACCOUNT}:secret:{self.tag}/a/*"
        grants_a = f'[{{secret_id: "{self.tag}/a/*"}}, {{secret_id: "{arn}"}}]'
        grants_b = f'[{{secret_id: "{self.tag}/b/*"}}]'
        teams_block = f"""\
teams:
  team-a:
    policy_files: [a.yaml]
    providers: [bw-a]
    commands: [restart-a]
    credentials: [teama-token]
    allowed_hosts: ["127.0.0.1:{self.a_served.port}"]
  team-b:
    policy_files: [b.yaml]
    providers: [bw-b]
    allowed_hosts: ["127.0.0.1:{self.b_served.port}"]
"""
        hosts = "[]" if teams else f'["127.0.0.1:{self.a_served.port}", "127.0.0.1:{self.b_served.port}"]'
        (self.dir / "rotator.yaml").write_text(
            f"""\
state: {{url: "sqlite:///{self.dir}/state.db"}}
policies_dir: policies
log: {{level: info, format: json}}
providers:
  bw-a: {{type: brandwave, base_url: "{self.sandbox.api_url}", admin_token: {{current: true}}, timeout: 2s,
          grants: {grants_a}}}
  bw-b: {{type: brandwave, base_url: "{self.sandbox.api_url}", admin_token: {{current: true}}, timeout: 2s,
          grants: {grants_b}}}
stores:
  aws: {{type: aws, region: us-east-1, endpoint_url: "{self.aws}"}}
hooks:
  allowed_hosts: {hosts}
  commands:
    restart-a: {{command: [/bin/sh, -c, "echo ran >> {self.marker}"]}}
  credentials:
    teama-token: {{env: TEAMA_TOKEN}}
engine: {{probe_deadline: 2s, verify_deadline: 5s, verify_interval: 200ms, retry_base: 100ms, retry_max: 1s,
          gate_poll: 200ms, hook_timeout: 2s, lease_ttl: 10s}}
{teams_block if teams else ""}{extra}"""
        )

    def write_a(self, consumer: str = "") -> None:
        (self.dir / "policies" / "a.yaml").write_text(
            f"""\
policies:
  a-quarterly: {{max_age: 90d, cutover: {{min_soak: 0s, require: [consumers], max_wait: 1h, on_timeout: hold}}}}
secrets:
  - name: {self.tag}-a-app
    provider: bw-a
    store: {{aws: {{secret_id: {self.tag}/a/app}}}}
    policy: a-quarterly
    consumers:
      - name: a-api
{consumer or self.a_hooks()}"""
        )

    def a_hooks(self) -> str:
        url = self.a_served.url
        return (
            f"        reload: {{http: {{method: POST, url: '{url}/reload', "
            "headers: {X-Token: {credential: teama-token}}}}\n"
            f"        confirm: {{http: {{url: '{url}/confirm'}}}}\n"
        )

    def write_b(self, body: str) -> None:
        (self.dir / "policies" / "b.yaml").write_text(body)

    def b_secret(self, *, provider: str = "bw-b", secret_id: str = "", consumers: str = "", policy: str = "b-p") -> str:
        return f"""\
policies:
  b-p: {{cutover: {{min_soak: 0s, require: [consumers], max_wait: 1h, on_timeout: hold}}}}
secrets:
  - name: {self.tag}-b-app
    provider: {provider}
    store: {{aws: {{secret_id: "{secret_id or self.tag + "/b/app"}"}}}}
    policy: {policy}
{consumers}"""

    def a_current(self) -> dict[str, Any]:
        got = self.sm.get_secret_value(SecretId=self.a_arn, VersionStage="AWSCURRENT")
        return dict(json.loads(got["SecretString"]))

    def authenticates(self, key: str) -> bool:
        answer = httpx.get(
            f"{self.sandbox.base_url}/v1/personal-access-tokens", headers={"Authorization": f"Bearer {key}"}
        )
        return answer.status_code == 200


def _mint(sandbox: Running, account: str, name: str) -> dict[str, Any]:
    answer = httpx.post(f"{sandbox.base_url}/_sandbox/keys", json={"name": name, "account": account})
    return dict(answer.json())


@pytest.fixture
def teams(tmp_path: Path, sandboxes: dict[str, Running], aws_url: str, sm: SecretsManagerClient) -> Iterator[Teams]:
    sandbox = sandboxes["brandwave"]
    tag = f"t{uuid.uuid4().hex[:8]}"
    account = f"acct_{uuid.uuid4().hex[:8]}"
    made = {}
    for team in ("a", "b"):
        key = _mint(sandbox, account, f"app-{team}")
        value = {"api_key": key["secret"], "key_id": key["id"], "provider": "brandwave",
                 "rotated_at": key["created_at"], "rotation_id": None}  # fmt: skip
        made[team] = (key, sm.create_secret(Name=f"{tag}/{team}/app", SecretString=json.dumps(value))["ARN"])
    a_consumer, b_consumer = Consumer(sm, f"{tag}/a/app"), Consumer(sm, f"{tag}/b/app")
    a_served, b_served = _serve(a_consumer, "consumer-a"), _serve(b_consumer, "consumer-b")
    (tmp_path / "policies").mkdir()
    world = Teams(
        tmp_path, sandbox, sm, aws_url, account, made["a"][0], made["a"][1], a_consumer, b_consumer,
        a_served, b_served, tmp_path / "command-ran", tag,
    )  # fmt: skip
    world.write_config()
    world.write_a()
    world.write_b(world.b_secret())
    yield world
    a_served.stop()
    b_served.stop()


def _refused(result: Any, *needles: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    for needle in needles:
        assert needle in result.stderr, result.stderr


def test_team_a_rotates_with_its_own_command_credential_and_host(teams: Teams) -> None:
    """The honest case: A's consumer gets A's credential, A's command runs, A's gate holds until
    A's consumer confirms; B's file, within B's allowances, validates beside it."""
    w = teams
    w.write_a(
        f"        reload: {{command: restart-a}}\n        confirm: {{http: {{url: '{w.a_served.url}/confirm', "
        "headers: {X-Token: {credential: teama-token}}}}\n"
    )
    w.a_consumer.key = w.a_key["secret"]  # A's app keeps its old key: its confirm does not match yet
    assert w.cli("validate", "--offline").returncode == 0
    held = w.cli("rotate", f"{w.tag}-a-app", "--detach")
    assert held.returncode in (0, 3), held.stdout + held.stderr
    assert w.marker.read_text().strip() == "ran"
    assert [s["headers"].get("x-token") for s in w.a_consumer.seen] and all(
        s["headers"].get("x-token") == A_TOKEN for s in w.a_consumer.seen
    )
    assert w.authenticates(w.a_key["secret"]), "the gate must hold A's old key until A's consumer confirms"


@pytest.mark.parametrize("spelling", ["full-arn", "partial-arn"])
def test_b_cannot_reach_a_secret_through_a_provider_by_its_arn(teams: Teams, spelling: str) -> None:
    """Attack 1 with teams: B names A's instance and A's secret by ARN; refused, A's key keeps working."""
    w = teams
    arn = w.a_arn if spelling == "full-arn" else w.a_arn.rsplit("-", 1)[0]
    w.write_b(w.b_secret(provider="bw-a", secret_id=arn))
    before = w.a_current()
    for args in (("validate", "--offline"), ("rotate", f"{w.tag}-b-app")):
        _refused(w.cli(*args), f"{w.dir / 'policies' / 'b.yaml'}:", "team 'team-b' may not use provider 'bw-a'")
    assert w.a_current() == before
    assert w.authenticates(w.a_key["secret"])


@pytest.mark.parametrize("spelling", ["full-arn", "partial-arn"])
def test_one_secret_under_two_spellings_is_a_duplicate(teams: Teams, spelling: str) -> None:
    """Attack 1 without teams (one team owns all): a second secret naming A's by its ARN is refused
    as the same store location, so A's gate cannot be skipped through it."""
    w = teams
    w.write_config(teams=False)
    arn = w.a_arn if spelling == "full-arn" else w.a_arn.rsplit("-", 1)[0]
    w.write_b(w.b_secret(provider="bw-a", secret_id=arn))
    before = w.a_current()
    for args in (("validate", "--offline"), ("rotate", f"{w.tag}-b-app")):
        _refused(w.cli(*args), "the same secret as secret", f"{w.tag}-a-app")
    assert w.a_current() == before
    assert w.authenticates(w.a_key["secret"])


def test_b_cannot_send_a_credential_of_a(teams: Teams) -> None:
    """Attack 2: B's hook names A's credential for B's own host; refused, B's host never gets it."""
    w = teams
    url = w.b_served.url
    w.write_b(
        w.b_secret(
            consumers=(
                "    consumers:\n      - name: b-api\n"
                f"        reload: {{http: {{method: POST, url: '{url}/reload', "
                "headers: {X-Token: {credential: teama-token}}}}\n"
                f"        confirm: {{http: {{url: '{url}/confirm'}}}}\n"
            )
        )
    )
    for args in (("validate", "--offline"), ("rotate", f"{w.tag}-b-app")):
        _refused(w.cli(*args), "b.yaml:", "unknown credential 'teama-token'", "team 'team-b'")
    assert not w.b_consumer.seen


def test_b_cannot_run_a_command_of_a(teams: Teams) -> None:
    """Attack 3: B's consumer names A's command; refused, and the command never runs."""
    w = teams
    w.write_b(
        w.b_secret(
            consumers=(
                "    consumers:\n      - name: b-api\n        reload: {command: restart-a}\n"
                f"        confirm: {{http: {{url: '{w.b_served.url}/confirm'}}}}\n"
            )
        )
    )
    for args in (("validate", "--offline"), ("rotate", f"{w.tag}-b-app")):
        _refused(w.cli(*args), "b.yaml:", "unknown command hook 'restart-a'", "team 'team-b'")
    assert not w.marker.exists()


def test_the_incident_policy_is_the_operators(teams: Teams) -> None:
    """Attack 4: a policy file redefining `incident` (to hold on the gate) is refused; the operator's
    tuning in rotator.yaml applies, and the leaked key is revoked."""
    w = teams
    w.write_config(teams=False)
    w.write_b(
        "policies:\n  incident: {cutover: {require: [consumers], max_wait: 2s, on_timeout: hold}}\n"
        + w.b_secret().removeprefix("policies:\n")
    )
    leaked = w.a_key["secret"]
    _refused(w.cli("validate", "--offline"), "b.yaml:2: policy 'incident' is built in", "rotator.yaml")
    _refused(w.cli("incident", "--leaked-key", "-", "--reason", "in a paste", input=leaked + "\n"), "b.yaml:2")
    assert w.authenticates(leaked) and w.a_current()["api_key"] == leaked

    w.write_b(w.b_secret())
    w.write_config(
        teams=False, extra="policies:\n  incident: {cutover: {min_soak: 0s, max_wait: 3s, on_timeout: revoke}}\n"
    )
    done = w.cli("incident", "--leaked-key", "-", "--reason", "in a paste", input=leaked + "\n")
    assert done.returncode == 0, done.stdout + done.stderr
    assert not w.authenticates(leaked)
    assert w.a_current()["api_key"] != leaked and w.authenticates(w.a_current()["api_key"])


@pytest.mark.parametrize("header", ["Host: 169.254.169.254", "X-Forwarded-Host: vault.internal:8200", "host: x"])
def test_a_routing_header_is_refused_before_anything_is_sent(teams: Teams, header: str) -> None:
    """Attack 5: a header that routes the request (behind a shared proxy, to another virtual host)."""
    w = teams
    w.write_config(teams=False)
    name, value = header.split(": ")
    url = w.b_served.url
    w.write_b(
        w.b_secret(
            consumers=(
                "    consumers:\n      - name: b-api\n"
                f"        reload: {{http: {{method: POST, url: '{url}/reload', headers: {{'{name}': '{value}'}}}}}}\n"
                f"        confirm: {{http: {{url: '{url}/confirm'}}}}\n"
            )
        )
    )
    for args in (("validate", "--offline"), ("rotate", f"{w.tag}-b-app")):
        _refused(w.cli(*args), "b.yaml:", f"header {name!r} routes or frames the request")
    assert not w.b_consumer.seen


def test_a_policy_file_linked_from_outside_is_refused(teams: Teams, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Attack 7: a symbolic link committed into policies/ pointing elsewhere is not read as a policy."""
    w = teams
    elsewhere = tmp_path_factory.mktemp("elsewhere") / "b.yaml"
    elsewhere.write_text(w.b_secret())
    (w.dir / "policies" / "b.yaml").unlink()
    os.symlink(elsewhere, w.dir / "policies" / "b.yaml")
    _refused(w.cli("validate", "--offline"), "b.yaml:1: a symbolic link to", "outside the policy directory")


def test_a_file_no_team_owns_is_refused(teams: Teams) -> None:
    """Every policy file belongs to exactly one team: an unowned file cannot slip in beside them."""
    w = teams
    (w.dir / "policies" / "c.yaml").write_text(w.b_secret().replace(f"{w.tag}-b-app", f"{w.tag}-c-app"))
    _refused(w.cli("validate", "--offline"), "c.yaml:1: no team in rotator.yaml owns this policy file")


def test_reconcile_through_b_never_revokes_a_current_key_of_a(teams: Teams) -> None:
    """Both teams' instances reach one vendor account: B's instance lists the key A's rotation made
    and now holds as current. `reconcile --fix` must not call it B's orphan and revoke it."""
    w = teams
    done = w.cli("rotate", f"{w.tag}-a-app")
    assert done.returncode == 0, done.stdout + done.stderr
    current = w.a_current()["api_key"]
    fixed = w.cli("reconcile", "--fix")
    assert "revoked key" not in fixed.stdout, fixed.stdout
    assert w.authenticates(current) and w.a_current()["api_key"] == current
