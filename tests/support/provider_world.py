"""A per-test world for any of the five providers: its own account at the simulator, a secret in moto
holding the first key, config and policies. The test plays the operator through `/_sandbox/keys`."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from mypy_boto3_secretsmanager import SecretsManagerClient
from rotator_sandbox.server import Running

from rotator.plugin import registry
from rotator.providers import dashboard
from tests.support.sandbox_world import SandboxWorld

ALL = tuple(
    sorted(name for name, kind in registry.providers().items() if kind.settings.__module__.startswith("rotator."))
)
"""rotator's own provider types, as installed: a new one is in every contract test at once."""
OPERATED = tuple(name for name in ALL if issubclass(registry.providers()[name].settings, dashboard.OperatedSettings))
"""Those whose keys only a person makes (rotator/providers/dashboard.py)."""
API = tuple(name for name in ALL if name not in OPERATED)
BOLTLY_SCOPES = ["contacts:read", "inbox:read", "tokens:read"]

CONFIG = """\
state: {{url: "sqlite:///{dir}/state.db"}}
policies_dir: policies
log: {{level: {log_level}, format: json}}
providers:
  p:
{provider}
stores:
  aws: {{type: aws, region: us-east-1, endpoint_url: "{aws}"}}
engine:
  probe_deadline: 2s
  verify_deadline: 5s
  verify_interval: 200ms
  operator_poll: 200ms
  retry_base: 100ms
  retry_max: 1s
  hold_interval: 1s
  lease_ttl: 10s
"""

POLICIES = """\
policies:
  fast:
    cutover: {{min_soak: {soak}}}
secrets:
  - name: {name}
    provider: p
    store: {{aws: {{secret_id: {secret_id}}}}}
    policy: fast
    permissions: [messages:send, team:read]
"""


@dataclass
class ProviderWorld(SandboxWorld):
    kind: str
    dir: Path
    sandbox: Running
    sm: SecretsManagerClient
    name: str
    secret_id: str
    account: str
    first: dict[str, Any]
    env: dict[str, str] = field(default_factory=dict)

    @property
    def control_url(self) -> str:
        return self.sandbox.base_url

    def extra_env(self) -> dict[str, str]:
        return self.env

    @classmethod
    def create(
        cls,
        tmp: Path,
        kind: str,
        *,
        sandboxes: dict[str, Running],
        aws: str,
        sm: SecretsManagerClient,
        soak: str = "0s",
        log_level: str = "info",
    ) -> ProviderWorld:
        sandbox = sandboxes[kind]
        name = f"{kind}-{uuid.uuid4().hex[:8]}"
        account = f"acct_{uuid.uuid4().hex[:8]}"
        provider = (
            f"    type: {kind}\n    base_url: {sandbox.api_url}\n    timeout: 1s\n"
            '    grants: [{store: aws, secret_id: "test/*"}]\n'
        )
        scopes = None
        if kind == "brandwave":
            provider += "    admin_token: {current: true}\n"
        if kind == "boltly":
            email, password = f"{name}@example.com", uuid.uuid4().hex
            httpx.post(
                f"{sandbox.base_url}/_sandbox/users", json={"email": email, "password": password, "account": account}
            ).raise_for_status()
            (tmp / "boltly.password").write_text(password + "\n")
            provider += (
                f"    email: {email}\n    password: {{file: {tmp}/boltly.password}}\n"
                f"    refresh_token_file: {tmp}/boltly.refresh\n"
            )
            scopes = BOLTLY_SCOPES
        (tmp / "policies").mkdir(parents=True, exist_ok=True)
        (tmp / "rotator.yaml").write_text(
            CONFIG.format(dir=tmp, provider=provider.rstrip("\n"), aws=aws, log_level=log_level)
        )
        secret_id = f"test/{name}"
        (tmp / "policies" / "main.yaml").write_text(POLICIES.format(name=name, secret_id=secret_id, soak=soak))
        world = cls(kind, tmp, sandbox, sm, name, secret_id, account, {})
        world.first = world.mint(scopes=scopes, name=f"app-{name}")
        value = {
            "api_key": world.first["secret"],
            "key_id": None if kind in OPERATED else world.first["id"],
            "provider": kind,
            "rotated_at": world.first["created_at"],
            "rotation_id": None,
        }
        sm.create_secret(Name=secret_id, SecretString=json.dumps(value))
        return world

    # playing the account owner / the operator --------------------------------------------------

    def mint(self, *, account: str | None = None, scopes: list[str] | None = None, name: str = "") -> dict[str, Any]:
        body: dict[str, Any] = {"name": name or "operator-made", "account": account or self.account}
        if scopes is not None:
            body["scopes"] = scopes
        return dict(httpx.post(f"{self.sandbox.base_url}/_sandbox/keys", json=body).json())

    def revoke(self, key_id: str) -> None:
        httpx.post(f"{self.sandbox.base_url}/_sandbox/keys/{key_id}/revoke").raise_for_status()

    def account_keys(self) -> list[dict[str, Any]]:
        all_keys = httpx.get(f"{self.sandbox.base_url}/_sandbox/keys").json()["keys"]
        return [k for k in all_keys if k["account"] == self.account]

    def live_ids(self) -> set[str]:
        return {k["id"] for k in self.account_keys() if not k["revoked"]}

    def config(self, **body: Any) -> None:
        httpx.post(f"{self.sandbox.base_url}/_sandbox/config", json=body).raise_for_status()

    def current(self) -> dict[str, Any]:
        got = self.sm.get_secret_value(SecretId=self.secret_id, VersionStage="AWSCURRENT")
        return dict(json.loads(got["SecretString"]))

    def active_rotation(self) -> str:
        rotation = self.app().db.active_for(self.name)
        assert rotation is not None
        return rotation.id
