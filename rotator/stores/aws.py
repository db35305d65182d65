"""AWS Secrets Manager: staging labels AWSPENDING / AWSCURRENT / AWSPREVIOUS, as AWS's rotation template.

The rotation id is the ClientRequestToken, so it is also the VersionId of the new version.
Applications must read with the AWSCURRENT stage (the default of GetSecretValue on AWS).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
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
from rotator.plugin.store import KnownValues, Store, StoredValue, Version
from rotator.runtime import ratelimit
from rotator.runtime.ratelimit import Limit

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

PENDING, CURRENT = "AWSPENDING", "AWSCURRENT"
BATCH_READ = 20
"""Secrets per BatchGetSecretValue given a list of ids (AWS's limit)."""
_WRITES = ("PutSecretValue", "UpdateSecret", "UpdateSecretVersionStage")
"""The actions that share AWS's write quota (50 per second per account and region, not adjustable)."""
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
        writes_per_second: int = 50,
        tags_per_second: int = 50,
        connections: int = 64,
    ) -> None:
        self._client: SecretsManagerClient = client or boto3.client(
            "secretsmanager",
            region_name=region,
            endpoint_url=endpoint_url,
            config=Config(
                connect_timeout=timeout,
                read_timeout=timeout,
                retries={"mode": "standard", "max_attempts": 4},
                # botocore's default of 10 would make rotations beyond the tenth queue for a connection
                max_pool_connections=connections,
            ),
        )
        self.known = KnownValues()
        # AWS counts these per account and region: every store (and client) of the region shares a window
        where = (region, endpoint_url)
        writes = ratelimit.shared(("aws-writes", *where), Limit(writes_per_second, timedelta(seconds=1)))
        tags = ratelimit.shared(("aws-tags", *where), Limit(tags_per_second, timedelta(seconds=1)))
        events = self._client.meta.events  # before-send: botocore's own retries count against the quota too
        for action in _WRITES:
            events.register(f"before-send.secrets-manager.{action}", lambda **_: writes.take())
        events.register("before-send.secrets-manager.TagResource", lambda **_: tags.take())

    def _call(self, action: str, location: str, *, refused: tuple[str, ...] = (), **kwargs: Any) -> Any:
        """The action's answer; None for a secret (or version) that does not exist; _Refused for
        an error code in `refused` (an answer the caller expects); any other error translated."""
        try:
            return getattr(self._client, _snake(action))(**kwargs)
        except (ClientError, BotoCoreError) as exc:
            code = exc.response.get("Error", {}).get("Code") if isinstance(exc, ClientError) else None
            if code == "ResourceNotFoundException":
                return None
            if code in refused:
                raise _Refused(code) from None
            raise _translate(exc, location=location, action=action) from None

    def _stages(self, location: str) -> dict[str, list[str]]:
        """Version id → staging labels; empty for a secret that does not exist (nothing pending there)."""
        described = self._call("DescribeSecret", location, SecretId=location)
        return dict(described.get("VersionIdsToStages", {})) if described else {}

    def _get(self, location: str, **selector: Any) -> tuple[Any, StoredValue] | None:
        """GetSecretValue by stage or version id: the answer and its value, kept by version id."""
        got = self._call("GetSecretValue", location, SecretId=location, **selector)
        if got is None or "SecretString" not in got:
            return None
        value = StoredValue.from_json(got["SecretString"], where=location)
        self.known.put(location, got["VersionId"], value)
        return got, value

    def read_current(self, *, location: str) -> Version | None:
        found = self._get(location, VersionStage=CURRENT)
        return Version(found[0]["VersionId"], found[1]) if found else None

    def read_current_many(self, locations: Sequence[str]) -> dict[str, Version | None]:
        """BatchGetSecretValue, 20 secrets a call (its limit for a list of ids); where the batch
        read is refused (no secretsmanager:BatchGetSecretValue), one GetSecretValue each."""
        found: dict[str, Version | None] = {}
        for start in range(0, len(locations), BATCH_READ):
            chunk = list(locations[start : start + BATCH_READ])
            try:
                answer = self._call("BatchGetSecretValue", chunk[0], SecretIdList=chunk)
            except StoreError:
                found.update(super().read_current_many(chunk))
                continue
            asked = set(chunk)
            unsure: list[str] = []
            for item in answer.get("SecretValues", []) if answer else []:
                location = item.get("Name") if item.get("Name") in asked else item.get("ARN")
                if location not in asked or "SecretString" not in item:
                    continue
                if CURRENT not in item.get("VersionStages", []):
                    # AWS answers with the AWSCURRENT version; a server that answered with another
                    # (moto, after the label moved) would make a rotated secret look never rotated
                    unsure.append(location)
                    continue
                try:
                    value = StoredValue.from_json(item["SecretString"], where=location)
                except StoreError:
                    continue
                self.known.put(location, item["VersionId"], value)
                found[location] = Version(item["VersionId"], value)
            for error in answer.get("Errors", []) if answer else []:
                if error.get("ErrorCode") == "ResourceNotFoundException" and error.get("SecretId") in asked:
                    found[error["SecretId"]] = None
            if unsure:
                found.update(super().read_current_many(unsure))
        return found

    def read_version(self, *, location: str, version_id: str) -> StoredValue | None:
        def read() -> StoredValue | None:
            found = self._get(location, VersionId=version_id)
            return found[1] if found else None

        return self.known.recall(location, version_id, read)

    def read_pending(self, *, location: str, token: str) -> StoredValue | None:
        # one call: the version by id comes with its labels, and AWS keeps a version after its
        # label is removed, so only a labelled one is pending
        found = self._get(location, VersionId=token)
        return found[1] if found and PENDING in found[0].get("VersionStages", []) else None

    def read_staged(self, *, location: str, token: str) -> StoredValue | None:
        # the version id is the token, pending or since promoted
        return self.read_version(location=location, version_id=token)

    def stage(self, *, location: str, token: str, value: StoredValue, first: bool = False) -> None:
        # PutSecretValue is idempotent on its ClientRequestToken: the same value again succeeds and
        # changes nothing, another value is refused (ResourceExistsException). moto lets a version
        # labelled AWSPENDING be overwritten, so unless this is the token's first write, look first.
        taken = f"{location!r}: version {token} already holds another key"
        if not first and (existing := self.read_version(location=location, version_id=token)) is not None:
            if existing.api_key.get_secret_value() != value.api_key.get_secret_value():
                raise StoreConflict(taken)
            return
        try:
            written = self._call(
                "PutSecretValue",
                location,
                refused=("ResourceExistsException",),
                SecretId=location,
                ClientRequestToken=token,
                SecretString=value.to_json(),
                VersionStages=[PENDING],
            )
        except _Refused:
            raise StoreConflict(taken) from None
        if written is None:
            raise StoreError(f"AWS Secrets Manager: secret {location!r} does not exist")
        self.known.put(location, token, value)

    def promote(self, *, location: str, token: str, expected_current: str) -> None:
        # one call that is also the check: AWS moves AWSCURRENT only if `expected_current` holds it
        try:
            moved = self._call(
                "UpdateSecretVersionStage",
                location,
                refused=("InvalidParameterException",),
                SecretId=location,
                VersionStage=CURRENT,
                MoveToVersionId=token,
                RemoveFromVersionId=expected_current,
            )
        except _Refused:
            self._after_refused_move(location, token, expected_current)  # a resumed promote, or a conflict
        else:
            if moved is None:
                raise StoreError(f"AWS Secrets Manager: secret {location!r} does not exist")
        self.clear_pending(location=location, token=token)

    def _after_refused_move(self, location: str, token: str, expected_current: str) -> None:
        """AWS refused to move AWSCURRENT from `expected_current` to `token`: fine if `token` is
        current already (a promote resumed after a crash), a conflict if someone else's is."""
        stages = self._stages(location)
        current = next((v for v, labels in stages.items() if CURRENT in labels), None)
        if current == token:
            return
        if current != expected_current:
            raise StoreConflict(
                f"{location!r}: current version is {current}, not {expected_current} as when the rotation "
                "started; someone else changed the secret — not overwriting it"
            )
        raise StoreError(f"AWS Secrets Manager: {location!r} has no version {token} to promote")

    def clear_pending(self, *, location: str, token: str) -> None:
        # AWS refuses to remove a label the version does not carry: then nothing is pending
        try:
            self._call(
                "UpdateSecretVersionStage",
                location,
                refused=("InvalidParameterException",),
                SecretId=location,
                VersionStage=PENDING,
                RemoveFromVersionId=token,
            )
        except _Refused:
            return

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


class _Refused(Exception):
    """AWS refused a request with an error code its caller expects (and handles)."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def _snake(action: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in action).lstrip("_")
