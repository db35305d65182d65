"""The store contract (rotator/plugin/testing.py) for both stores, against a real moto server and a
real OpenBao server."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from mypy_boto3_secretsmanager import SecretsManagerClient

from rotator.keys import secret
from rotator.plugin.testing import StoreCase, StoreContract
from rotator.stores.aws import AwsSecretsManager
from rotator.stores.vault import VaultKV
from tests.conftest import OpenBao


def aws_case(aws_url: str, sm: SecretsManagerClient) -> StoreCase:
    name = f"contract/{uuid.uuid4().hex}"
    sm.create_secret(Name=name, SecretString=json.dumps({"api_key": "old-key-value", "key_id": "old"}))
    sm.tag_resource(SecretId=name, Tags=[{"Key": "team", "Value": "support"}])

    def app_read() -> dict[str, Any]:
        return dict(json.loads(sm.get_secret_value(SecretId=name, VersionStage="AWSCURRENT")["SecretString"]))

    return StoreCase(
        store=AwsSecretsManager(region="us-east-1", endpoint_url=aws_url),
        location=name,
        app_read=app_read,
        foreign_write=lambda v: sm.put_secret_value(SecretId=name, SecretString=json.dumps(v)),
        metadata=lambda: {t["Key"]: t["Value"] for t in sm.describe_secret(SecretId=name)["Tags"]},
        history=lambda: len(sm.describe_secret(SecretId=name)["VersionIdsToStages"]),
    )


def vault_case(openbao: OpenBao) -> StoreCase:
    client = openbao.client()
    path = f"contract/{uuid.uuid4().hex}"
    client.secrets.kv.v2.create_or_update_secret(path=path, secret={"api_key": "old-key-value", "key_id": "old"})
    client.adapter.request(
        "PATCH",
        f"/v1/secret/metadata/{path}",
        json={"custom_metadata": {"team": "support"}},
        headers={"Content-Type": "application/merge-patch+json"},
    )

    def meta() -> dict[str, Any]:
        return dict(client.secrets.kv.v2.read_secret_metadata(path=path)["data"])

    return StoreCase(
        store=VaultKV(url=openbao.url, token=secret(openbao.root_token)),
        location=f"secret:{path}",
        app_read=lambda: dict(
            client.secrets.kv.v2.read_secret_version(path=path, raise_on_deleted_version=True)["data"]["data"]
        ),
        foreign_write=lambda v: client.secrets.kv.v2.create_or_update_secret(path=path, secret=v),
        metadata=lambda: {
            f"rotator:{k}" if k != "team" else k: v for k, v in (meta()["custom_metadata"] or {}).items()
        },
        history=lambda: int(meta()["current_version"]),
    )


class TestAwsSecretsManager(StoreContract):
    @pytest.fixture
    def case(self, aws_url: str, sm: SecretsManagerClient) -> StoreCase:
        return aws_case(aws_url, sm)


class TestVaultKV(StoreContract):
    @pytest.fixture
    def case(self, openbao: OpenBao) -> StoreCase:
        return vault_case(openbao)
