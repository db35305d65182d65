"""A per-test world: a secret in moto, its first token at the Brandwave sandbox, config and policies.

Each world has its own secret name, SQLite file and tokens, so tests share the session's servers
without seeing each other's state.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import hvac
import hvac.exceptions
from mypy_boto3_secretsmanager import SecretsManagerClient

from tests.support.sandbox_world import SandboxWorld

CONFIG = """\
state: {{url: "sqlite:///{dir}/state.db"}}
policies_dir: policies
log: {{level: {log_level}, format: json}}
providers:
  bw:
    type: brandwave
    base_url: {brandwave}
    admin_token: {{current: true}}
    timeout: 1s
    grants: [{{store: aws, secret_id: "test/*"}}, {{store: vault, path: "test/*"}}]
hooks:
  allowed_hosts: [127.0.0.1]
stores:
  aws: {{type: aws, region: us-east-1, endpoint_url: "{aws}"}}
  vault: {{type: vault, url: "{vault}", auth: {{token: {{env: RT_TEST_VAULT_TOKEN}}}}}}
engine:
  probe_deadline: 2s
  verify_deadline: 3s
  verify_interval: 200ms
  retry_base: 100ms
  retry_max: 1s
  hold_interval: 1s
  lease_ttl: 10s
"""

POLICIES = """\
policies:
  fast:
    max_age: 90d
    cutover: {{min_soak: {soak}}}
secrets:
  - name: {name}
    provider: bw
    store: {store}
    policy: fast
    access: [alice@example.com, team:support]
teams:
  support: [bob@example.com]
"""


@dataclass
class World(SandboxWorld):
    dir: Path
    aws: str
    brandwave: str
    sm: SecretsManagerClient
    name: str
    secret_id: str
    first: dict[str, Any]
    vault: hvac.Client | None = None

    @property
    def control_url(self) -> str:
        return self.brandwave

    @property
    def config(self) -> Path:
        return self.dir / "rotator.yaml"

    @classmethod
    def create(
        cls,
        tmp: Path,
        *,
        aws: str,
        brandwave: str,
        sm: SecretsManagerClient,
        soak: str = "0s",
        log_level: str = "info",
        vault: hvac.Client | None = None,
    ) -> World:
        """Seed a first token and a secret holding it, in AWS or (with `vault`) in Vault KV v2."""
        name = f"s-{uuid.uuid4().hex[:10]}"
        secret_id = f"test/{name}"
        store = f"{{vault: {{path: {secret_id}}}}}" if vault else f"{{aws: {{secret_id: {secret_id}}}}}"
        (tmp / "policies").mkdir(parents=True, exist_ok=True)
        vault_url = vault.url if vault else "http://127.0.0.1:9"
        (tmp / "rotator.yaml").write_text(
            CONFIG.format(dir=tmp, brandwave=brandwave, aws=aws, vault=vault_url, log_level=log_level)
        )
        (tmp / "policies" / "main.yaml").write_text(POLICIES.format(name=name, store=store, soak=soak))
        first = httpx.post(f"{brandwave}/_sandbox/keys", json={"name": f"app-{name}"}).json()
        first["token"] = first["secret"]
        value = {
            "api_key": first["token"],
            "key_id": first["id"],
            "provider": "brandwave",
            "rotated_at": first["created_at"],
            "rotation_id": None,
        }
        if vault:
            vault.secrets.kv.v2.create_or_update_secret(path=secret_id, secret=value, mount_point="secret")
        else:
            sm.create_secret(Name=secret_id, SecretString=json.dumps(value))
        return cls(tmp, aws, brandwave, sm, name, secret_id, first, vault)

    def _vault_read(self, version: int | None = None) -> dict[str, Any]:
        assert self.vault is not None
        got = self.vault.secrets.kv.v2.read_secret_version(
            path=self.secret_id, mount_point="secret", version=version, raise_on_deleted_version=True
        )
        return dict(got["data"]["data"])

    def current(self) -> dict[str, Any]:
        """What an application reads: AWSCURRENT (asked for explicitly: moto quirk), or Vault's latest."""
        if self.vault:
            return self._vault_read()
        got = self.sm.get_secret_value(SecretId=self.secret_id, VersionStage="AWSCURRENT")
        return dict(json.loads(got["SecretString"]))

    def previous(self) -> dict[str, Any]:
        if self.vault:
            return self._vault_read(self.versions() - 1)
        got = self.sm.get_secret_value(SecretId=self.secret_id, VersionStage="AWSPREVIOUS")
        return dict(json.loads(got["SecretString"]))

    def versions(self) -> int:
        """How many versions the secret has (Vault's current_version; AWS's labelled versions)."""
        if self.vault:
            meta = self.vault.secrets.kv.v2.read_secret_metadata(path=self.secret_id, mount_point="secret")
            return int(meta["data"]["current_version"])
        return len(self.stages())

    def pending_left(self) -> bool:
        if self.vault:
            try:
                listed = self.vault.secrets.kv.v2.list_secrets(
                    path=f"rotator-pending/secret/{self.secret_id}", mount_point="secret"
                )
            except hvac.exceptions.InvalidPath:
                return False
            return bool(listed["data"]["keys"])
        return "AWSPENDING" in str(self.stages())

    def stages(self) -> dict[str, list[str]]:
        return dict(self.sm.describe_secret(SecretId=self.secret_id)["VersionIdsToStages"])

    def tokens(self) -> list[dict[str, Any]]:
        return list(httpx.get(f"{self.brandwave}/_sandbox/keys").json()["keys"])

    def live_ids(self) -> set[str]:
        """Live tokens that belong to this world: its first token and keys named after its rotations."""
        mine = self.rotation_names() | {self.first["name"]}
        return {t["id"] for t in self.tokens() if not t["revoked"] and t["name"] in mine}

    def rotation_names(self) -> set[str]:
        return {f"rotator-{r.id}" for r in self.app().db.rotations_of(self.name)}

    def probe(self, token: str) -> int:
        return httpx.get(
            f"{self.brandwave}/v1/personal-access-tokens", headers={"Authorization": f"Bearer {token}"}
        ).status_code
