"""AWS Secrets Manager: staging labels AWSPENDING / AWSCURRENT / AWSPREVIOUS, as AWS's rotation template.

The rotation id is the ClientRequestToken, so it is also the VersionId of the new version.
Applications must read with the AWSCURRENT stage (the default of GetSecretValue on AWS).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

from rotator.errors import StoreConflict, StoreError, StorePermissionError, StoreUnavailable
from rotator.stores.base import Store, StoredValue, Version

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

PENDING, CURRENT = "AWSPENDING", "AWSCURRENT"
_TEMPORARY = {
    "ThrottlingException",
    "InternalServiceError",
    "ServiceUnavailable",
    "RequestTimeout",
    "TooManyRequestsException",
}
_DENIED = {"AccessDeniedException", "UnrecognizedClientException", "InvalidSignatureException"}


def _translate(exc: Exception, *, location: str, action: str) -> StoreError:
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        text = f"AWS Secrets Manager {action} on {location!r}: {code}"
        if code in _TEMPORARY:
            return StoreUnavailable(text)
        if code in _DENIED:
            return StorePermissionError(f"{text}: the role needs secretsmanager:{action} on this secret")
        return StoreError(text)
    if isinstance(exc, EndpointConnectionError | BotoCoreError):
        return StoreUnavailable(f"AWS Secrets Manager {action} on {location!r}: {type(exc).__name__}")
    raise exc


class AwsSecretsManager(Store):
    def __init__(
        self,
        *,
        region: str,
        endpoint_url: str | None = None,
        timeout: float = 10.0,
        client: SecretsManagerClient | None = None,
    ) -> None:
        self._client: SecretsManagerClient = client or boto3.client(
            "secretsmanager",
            region_name=region,
            endpoint_url=endpoint_url,
            config=Config(
                connect_timeout=timeout, read_timeout=timeout, retries={"mode": "standard", "max_attempts": 4}
            ),
        )

    def _call(self, action: str, location: str, **kwargs: Any) -> Any:
        try:
            return getattr(self._client, _snake(action))(**kwargs)
        except (ClientError, BotoCoreError) as exc:
            if (
                isinstance(exc, ClientError)
                and exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException"
            ):
                return None
            raise _translate(exc, location=location, action=action) from None

    def _stages(self, location: str) -> dict[str, list[str]]:
        """Version id → staging labels; empty for a secret that does not exist (nothing pending there)."""
        described = self._call("DescribeSecret", location, SecretId=location)
        return dict(described.get("VersionIdsToStages", {})) if described else {}

    def read_current(self, *, location: str) -> Version | None:
        got = self._call("GetSecretValue", location, SecretId=location, VersionStage=CURRENT)
        if got is None or "SecretString" not in got:
            return None
        return Version(got["VersionId"], StoredValue.from_json(got["SecretString"], where=location))

    def read_version(self, *, location: str, version_id: str) -> StoredValue | None:
        got = self._call("GetSecretValue", location, SecretId=location, VersionId=version_id)
        if got is None or "SecretString" not in got:
            return None
        return StoredValue.from_json(got["SecretString"], where=location)

    def read_pending(self, *, location: str, token: str) -> StoredValue | None:
        # AWS keeps a version after its label is removed: only a labelled one is pending
        if PENDING not in self._stages(location).get(token, []):
            return None
        return self.read_version(location=location, version_id=token)

    def stage(self, *, location: str, token: str, value: StoredValue) -> None:
        existing = self.read_version(location=location, version_id=token)
        if existing is not None:
            if existing.api_key.get_secret_value() != value.api_key.get_secret_value():
                raise StoreConflict(f"{location!r}: version {token} already holds another key")
            return
        self._call(
            "PutSecretValue",
            location,
            SecretId=location,
            ClientRequestToken=token,
            SecretString=value.to_json(),
            VersionStages=[PENDING],
        )

    def promote(self, *, location: str, token: str, expected_current: str) -> None:
        stages = self._stages(location)
        if not stages:
            raise StoreError(f"AWS Secrets Manager: secret {location!r} does not exist")
        current = next((v for v, labels in stages.items() if CURRENT in labels), None)
        if current != token:
            if current != expected_current:
                raise StoreConflict(
                    f"{location!r}: current version is {current}, not {expected_current} as when the rotation "
                    "started; someone else changed the secret — not overwriting it"
                )
            self._call(
                "UpdateSecretVersionStage",
                location,
                SecretId=location,
                VersionStage=CURRENT,
                MoveToVersionId=token,
                RemoveFromVersionId=current,
            )
        self.clear_pending(location=location, token=token)

    def clear_pending(self, *, location: str, token: str) -> None:
        if PENDING in self._stages(location).get(token, []):
            self._call(
                "UpdateSecretVersionStage",
                location,
                SecretId=location,
                VersionStage=PENDING,
                RemoveFromVersionId=token,
            )

    def pending_tokens(self, *, location: str) -> list[str]:
        return [v for v, labels in self._stages(location).items() if PENDING in labels]

    def set_metadata(self, *, location: str, metadata: dict[str, str]) -> None:
        tags = [{"Key": f"rotator:{k}", "Value": v} for k, v in sorted(metadata.items())]
        self._call("TagResource", location, SecretId=location, Tags=tags)


def _snake(action: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in action).lstrip("_")
