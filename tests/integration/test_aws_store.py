"""The AWS store against a real moto server over HTTP. Applications read with VersionStage=AWSCURRENT."""

import json
import uuid

import pytest
from mypy_boto3_secretsmanager import SecretsManagerClient

from rotator.errors import StoreConflict
from rotator.keys import secret
from rotator.stores.aws import AwsSecretsManager
from rotator.stores.base import StoredValue


def value(key: str, rotation_id: str = "r") -> StoredValue:
    return StoredValue.new(api_key=secret(key), key_id=f"id-{key}", provider="brandwave", rotation_id=rotation_id)


@pytest.fixture
def store(aws_url: str) -> AwsSecretsManager:
    return AwsSecretsManager(region="us-east-1", endpoint_url=aws_url)


@pytest.fixture
def location(sm: SecretsManagerClient) -> str:
    name = f"store/{uuid.uuid4().hex}"
    sm.create_secret(Name=name, SecretString=json.dumps({"api_key": "old-key-value", "key_id": "old"}))
    return name


def token() -> str:
    return str(uuid.uuid4())


def test_stage_twice_with_the_same_token_writes_once(
    store: AwsSecretsManager, location: str, sm: SecretsManagerClient
) -> None:
    t = token()
    store.stage(location=location, token=t, value=value("new-key-value", t))
    store.stage(location=location, token=t, value=value("new-key-value", t))
    stages = sm.describe_secret(SecretId=location)["VersionIdsToStages"]
    assert len(stages) == 2 and stages[t] == ["AWSPENDING"]


def test_stage_refuses_a_different_key_under_the_same_token(store: AwsSecretsManager, location: str) -> None:
    """moto lets a pending version be overwritten (AWS refuses): the store itself must refuse."""
    t = token()
    store.stage(location=location, token=t, value=value("new-key-value", t))
    with pytest.raises(StoreConflict):
        store.stage(location=location, token=t, value=value("other-key-value", t))


def test_pending_is_never_current(store: AwsSecretsManager, location: str) -> None:
    t = token()
    store.stage(location=location, token=t, value=value("new-key-value", t))
    current = store.read_current(location=location)
    assert current is not None and current.value.api_key.get_secret_value() == "old-key-value"


def test_promote_is_idempotent_and_keeps_previous(
    store: AwsSecretsManager, location: str, sm: SecretsManagerClient
) -> None:
    old = store.read_current(location=location)
    assert old is not None
    t = token()
    store.stage(location=location, token=t, value=value("new-key-value", t))
    store.promote(location=location, token=t, expected_current=old.version_id)
    store.promote(location=location, token=t, expected_current=old.version_id)
    stages = sm.describe_secret(SecretId=location)["VersionIdsToStages"]
    assert stages[t] == ["AWSCURRENT"]
    assert stages[old.version_id] == ["AWSPREVIOUS"]
    current = sm.get_secret_value(SecretId=location, VersionStage="AWSCURRENT")
    assert json.loads(current["SecretString"])["api_key"] == "new-key-value"
    previous = sm.get_secret_value(SecretId=location, VersionStage="AWSPREVIOUS")
    assert json.loads(previous["SecretString"])["api_key"] == "old-key-value"


def test_promote_refuses_when_someone_else_changed_current(
    store: AwsSecretsManager, location: str, sm: SecretsManagerClient
) -> None:
    old = store.read_current(location=location)
    assert old is not None
    t = token()
    store.stage(location=location, token=t, value=value("new-key-value", t))
    sm.put_secret_value(SecretId=location, SecretString=json.dumps({"api_key": "someone-else", "key_id": "x"}))
    with pytest.raises(StoreConflict, match="someone else changed the secret"):
        store.promote(location=location, token=t, expected_current=old.version_id)
    current = sm.get_secret_value(SecretId=location, VersionStage="AWSCURRENT")
    assert json.loads(current["SecretString"])["api_key"] == "someone-else"


def test_clear_pending_removes_the_label_and_is_idempotent(store: AwsSecretsManager, location: str) -> None:
    t = token()
    store.stage(location=location, token=t, value=value("new-key-value", t))
    assert store.pending_tokens(location=location) == [t]
    store.clear_pending(location=location, token=t)
    store.clear_pending(location=location, token=t)
    assert store.pending_tokens(location=location) == []


def test_metadata_goes_to_tags_and_merges(store: AwsSecretsManager, location: str, sm: SecretsManagerClient) -> None:
    sm.tag_resource(SecretId=location, Tags=[{"Key": "team", "Value": "support"}])
    store.set_metadata(location=location, metadata={"fingerprint": "sha256:abc", "rotation-id": "r1"})
    tags = {t["Key"]: t["Value"] for t in sm.describe_secret(SecretId=location)["Tags"]}
    assert tags == {"team": "support", "rotator:fingerprint": "sha256:abc", "rotator:rotation-id": "r1"}


def test_a_bare_string_value_is_read_as_the_key(store: AwsSecretsManager, sm: SecretsManagerClient) -> None:
    name = f"store/{uuid.uuid4().hex}"
    sm.create_secret(Name=name, SecretString="plain-key-value")
    current = store.read_current(location=name)
    assert current is not None
    assert current.value.api_key.get_secret_value() == "plain-key-value" and current.value.key_id is None
