"""One contract for every store, run against a real moto server and a real OpenBao server."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from mypy_boto3_secretsmanager import SecretsManagerClient

from rotator.errors import StoreConflict
from rotator.keys import secret
from rotator.stores.aws import AwsSecretsManager
from rotator.stores.base import Store, StoredValue
from rotator.stores.vault import VaultKV
from tests.conftest import OpenBao


@dataclass
class Case:
    store: Store
    location: str
    app_read: Callable[[], dict[str, Any]]
    """What an application reads as current."""
    foreign_write: Callable[[dict[str, Any]], None]
    """Someone else writes the secret."""
    metadata: Callable[[], dict[str, str]]
    history: Callable[[], int]
    """How many versions carry a value."""


def aws_case(aws_url: str, sm: SecretsManagerClient) -> Case:
    name = f"contract/{uuid.uuid4().hex}"
    sm.create_secret(Name=name, SecretString=json.dumps({"api_key": "old-key-value", "key_id": "old"}))
    sm.tag_resource(SecretId=name, Tags=[{"Key": "team", "Value": "support"}])

    def app_read() -> dict[str, Any]:
        return dict(json.loads(sm.get_secret_value(SecretId=name, VersionStage="AWSCURRENT")["SecretString"]))

    return Case(
        store=AwsSecretsManager(region="us-east-1", endpoint_url=aws_url),
        location=name,
        app_read=app_read,
        foreign_write=lambda v: sm.put_secret_value(SecretId=name, SecretString=json.dumps(v)),
        metadata=lambda: {t["Key"]: t["Value"] for t in sm.describe_secret(SecretId=name)["Tags"]},
        history=lambda: len(sm.describe_secret(SecretId=name)["VersionIdsToStages"]),
    )


def vault_case(openbao: OpenBao) -> Case:
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

    return Case(
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


@pytest.fixture(params=["aws", "vault"])
def case(request: pytest.FixtureRequest) -> Case:
    if request.param == "aws":
        return aws_case(request.getfixturevalue("aws_url"), request.getfixturevalue("sm"))
    return vault_case(request.getfixturevalue("openbao"))


def value(key: str, rotation_id: str) -> StoredValue:
    return StoredValue.new(api_key=secret(key), key_id=f"id-{key}", provider="brandwave", rotation_id=rotation_id)


def token() -> str:
    return str(uuid.uuid4())


def test_stage_twice_with_the_same_token_writes_once(case: Case) -> None:
    t = token()
    before = case.history()
    case.store.stage(location=case.location, token=t, value=value("new-key-value", t))
    case.store.stage(location=case.location, token=t, value=value("new-key-value", t))
    assert case.store.pending_tokens(location=case.location) == [t]
    pending = case.store.read_pending(location=case.location, token=t)
    assert pending is not None and pending.api_key.get_secret_value() == "new-key-value"
    assert case.history() - before <= 1  # AWS counts the pending version; Vault keeps it elsewhere


def test_stage_refuses_a_different_key_under_the_same_token(case: Case) -> None:
    t = token()
    case.store.stage(location=case.location, token=t, value=value("new-key-value", t))
    with pytest.raises(StoreConflict):
        case.store.stage(location=case.location, token=t, value=value("other-key-value", t))


def test_the_current_value_is_never_a_pending_key(case: Case) -> None:
    t = token()
    case.store.stage(location=case.location, token=t, value=value("new-key-value", t))
    assert case.app_read()["api_key"] == "old-key-value"
    current = case.store.read_current(location=case.location)
    assert current is not None and current.value.api_key.get_secret_value() == "old-key-value"


def test_promote_is_idempotent_and_keeps_the_previous_readable(case: Case) -> None:
    old = case.store.read_current(location=case.location)
    assert old is not None
    t = token()
    case.store.stage(location=case.location, token=t, value=value("new-key-value", t))
    case.store.promote(location=case.location, token=t, expected_current=old.version_id)
    versions = case.history()
    case.store.promote(location=case.location, token=t, expected_current=old.version_id)
    assert case.history() == versions
    assert case.app_read()["api_key"] == "new-key-value"
    previous = case.store.read_version(location=case.location, version_id=old.version_id)
    assert previous is not None and previous.api_key.get_secret_value() == "old-key-value"
    assert case.store.pending_tokens(location=case.location) == []


def test_promote_refuses_to_overwrite_someone_elses_write(case: Case) -> None:
    old = case.store.read_current(location=case.location)
    assert old is not None
    t = token()
    case.store.stage(location=case.location, token=t, value=value("new-key-value", t))
    case.foreign_write({"api_key": "someone-else", "key_id": "x"})
    with pytest.raises(StoreConflict, match="someone else"):
        case.store.promote(location=case.location, token=t, expected_current=old.version_id)
    assert case.app_read()["api_key"] == "someone-else"


def test_rollback_clears_pending_and_is_idempotent(case: Case) -> None:
    t = token()
    case.store.stage(location=case.location, token=t, value=value("new-key-value", t))
    case.store.clear_pending(location=case.location, token=t)
    case.store.clear_pending(location=case.location, token=t)
    assert case.store.pending_tokens(location=case.location) == []
    assert case.store.read_pending(location=case.location, token=t) is None
    assert case.app_read()["api_key"] == "old-key-value"


def test_metadata_is_merged_not_replaced(case: Case) -> None:
    case.store.set_metadata(location=case.location, metadata={"fingerprint": "sha256:abc", "rotation-id": "r1"})
    case.store.set_metadata(location=case.location, metadata={"policy": "quarterly"})
    assert case.metadata() == {
        "team": "support",
        "rotator:fingerprint": "sha256:abc",
        "rotator:rotation-id": "r1",
        "rotator:policy": "quarterly",
    }


def test_a_missing_secret_reads_as_none(case: Case) -> None:
    location = case.location.rsplit("/", 1)[0] + "/does-not-exist"
    assert case.store.read_current(location=location) is None
    assert case.store.pending_tokens(location=location) == []
