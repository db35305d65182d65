"""AWS Secrets Manager as rotator.yaml and policy files name it; the adapter is stores/aws.py
(imported when a store is made, so commands that never touch AWS do not load boto3)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from rotator.config_parts import AWS_SECRET_ID, StoreRefPart, StoreSettings, plain_http
from rotator.registry import Services, StoreType
from rotator.stores.base import Store


class AwsStoreSettings(StoreSettings):
    type: Literal["aws"] = "aws"
    region: str = "us-east-1"
    endpoint_url: str | None = None
    writes_per_second: int = Field(default=50, ge=1)
    """PutSecretValue, UpdateSecret and UpdateSecretVersionStage share one AWS quota of 50 per second
    per account and region; rotator sends no more (all stores of one region share the limit)."""
    tags_per_second: int = Field(default=50, ge=1)
    """TagResource's own quota, likewise."""

    def transport_warnings(self, name: str) -> list[str]:
        return [f"stores.{name}.endpoint_url is plain http to another host"] if plain_http(self.endpoint_url) else []


class AwsRef(StoreRefPart):
    secret_id: str
    instance: str = "aws"

    @field_validator("secret_id")
    @classmethod
    def _a_name_or_arn(cls, value: str) -> str:
        if not AWS_SECRET_ID.fullmatch(value) or "*" in value or "?" in value:
            raise ValueError(
                f"secret_id {value!r} is not an AWS secret name (letters, digits, / _ + = . @ -) or secret ARN"
            )
        return value

    @property
    def location(self) -> str:
        return self.secret_id


def _build(settings: AwsStoreSettings, services: Services, instance: str) -> Store:
    from rotator.stores.aws import AwsSecretsManager

    return AwsSecretsManager(
        region=settings.region,
        endpoint_url=settings.endpoint_url,
        timeout=settings.timeout.total_seconds(),
        writes_per_second=settings.writes_per_second,
        tags_per_second=settings.tags_per_second,
        connections=services.connections,
    )


TYPE = StoreType(name="aws", settings=AwsStoreSettings, ref=AwsRef, build=_build)
