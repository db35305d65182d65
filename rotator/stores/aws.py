"""AWS Secrets Manager: staging labels AWSPENDING / AWSCURRENT / AWSPREVIOUS, as AWS's rotation template.

The rotation id is the ClientRequestToken, so it is also the VersionId of the new version.
Applications must read with the AWSCURRENT stage (the default of GetSecretValue on AWS).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
)

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
_BAD_CREDENTIALS = {"UnrecognizedClientException", "InvalidSignatureException", "ExpiredTokenException"}
_CREDENTIAL_FIX = (
    "give rotator AWS credentials: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, "
    "or an instance/IRSA role (boto3's credential chain)"
)


def _translate(exc: Exception, *, location: str, action: str) -> StoreError:
    """botocore's errors as ours. Missing or refused credentials, an unknown region or endpoint
    host and a denied action are permanent (they name the fix); throttling, 5xx and lost
    connections are temporary."""
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        text = f"AWS Secrets Manager {action} on {location!r}: {code}"
        if code in _TEMPORARY:
            return StoreUnavailable(text)
        if code in _BAD_CREDENTIALS:
            return StorePermissionError(f"{text}: the AWS credentials are not valid; {_CREDENTIAL_FIX}")
        if code in _DENIED:
            return StorePermissionError(f"{text}: the role needs secretsmanager:{action} on this secret")
        return StoreError(text)
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return StorePermissionError(
            f"AWS Secrets Manager {action} on {location!r}: no AWS credentials; {_CREDENTIAL_FIX}"
        )
    if isinstance(exc, NoRegionError):
        return StoreError("AWS Secrets Manager: no region; set stores.<name>.region in rotator.yaml")
    if isinstance(exc, EndpointConnectionError) and _unresolvable(exc):
        return StoreError(
            f"AWS Secrets Manager {action} on {location!r}: cannot resolve {exc.kwargs.get('endpoint_url')}; "
            "check stores.<name>.region and endpoint_url in rotator.yaml"
        )
    if isinstance(exc, BotoCoreError):
        return StoreUnavailable(f"AWS Secrets Manager {action} on {location!r}: {type(exc).__name__}")
    raise exc


def _unresolvable(exc: EndpointConnectionError) -> bool:
    """A host name that DNS does not know (a typo'd region or endpoint), not a lost connection."""
    text = str(exc.kwargs.get("error", "")) + repr(exc.__cause__ or exc.__context__ or "")
    return "Name or service not known" in text or "nodename nor servname" in text or "getaddrinfo" in text


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

    def check_access(self, *, location: str) -> list[tuple[str, str | None]]:
        """Each call a rotation makes, made so that it cannot change anything: AWS checks the
        permission first, then refuses the request itself (an existing version token with another
        value; removing a label from a version that lacks it; an empty tag list)."""
        current = self.read_current(location=location)
        if current is None:
            raise StoreError(f"AWS Secrets Manager: secret {location!r} does not exist or has no current value")
        results: list[tuple[str, str | None]] = [("read (GetSecretValue, DescribeSecret)", None)]
        probes: list[tuple[str, str, str | None, dict[str, Any]]] = [
            (
                "write pending (PutSecretValue)",
                "PutSecretValue",
                "ResourceExistsException",
                {"ClientRequestToken": current.version_id, "SecretString": '{"rotator": "access check"}'},
            ),
            (
                "move stages (UpdateSecretVersionStage)",
                "UpdateSecretVersionStage",
                "InvalidParameterException",
                {"VersionStage": PENDING, "RemoveFromVersionId": current.version_id},
            ),
            ("tag (TagResource)", "TagResource", None, {"Tags": []}),
        ]
        for what, action, refusal, kwargs in probes:
            try:
                getattr(self._client, _snake(action))(SecretId=location, **kwargs)
                results.append((what, None))
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "")
                if code == refusal or code in (
                    "InvalidParameterException",
                    "InvalidRequestException",
                    "ValidationException",
                ):
                    results.append((what, None))  # past the permission check, refused as intended
                elif code in _DENIED:
                    results.append((what, f"denied ({code}): the role needs secretsmanager:{action} on {location}"))
                else:
                    results.append((what, f"unexpected answer {code}"))
        return results

    def set_metadata(self, *, location: str, metadata: dict[str, str]) -> None:
        tags = [{"Key": f"rotator:{k}", "Value": v} for k, v in sorted(metadata.items())]
        self._call("TagResource", location, SecretId=location, Tags=tags)


def _snake(action: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in action).lstrip("_")
