"""AWS Secrets Manager as rotator.yaml and policy files name it; the adapter is stores/aws.py
(imported when a store is made, so commands that never touch AWS do not load boto3)."""

from __future__ import annotations

import fnmatch
import functools
import re
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from rotator.plugin.registry import Services, StoreType
from rotator.plugin.settings import Grant, HttpUrl, StoreRefPart, StoreSettings, plain_http, url_identity
from rotator.plugin.store import Store

AWS_SECRET_ID = re.compile(
    r"[A-Za-z0-9/_+=.@*?-]{1,512}|arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.@*?-]+"
)


class AwsStoreSettings(StoreSettings):
    type: Literal["aws"] = "aws"
    region: str = "us-east-1"
    """The AWS region of the secrets."""
    endpoint_url: HttpUrl | None = None
    """Another Secrets Manager endpoint (a VPC endpoint, a local test server); default: the region's own."""
    writes_per_second: int = Field(default=50, ge=1, le=100_000)
    """PutSecretValue, UpdateSecret and UpdateSecretVersionStage share one AWS quota of 50 per second
    per account and region; rotator sends no more (all stores of one region share the limit)."""
    tags_per_second: int = Field(default=50, ge=1, le=100_000)
    """TagResource's own quota, likewise."""
    account_id: str | None = Field(default=None, pattern=r"^\d{12}$", description="an AWS account id is 12 digits")
    """The AWS account the store's credentials act in. Given, a grant by name also covers the
    secret's ARN spellings in this account and region (and nothing in another account)."""

    @field_validator("region")
    @classmethod
    def _region(cls, value: str) -> str:
        # botocore's own check of a region name (lower case here, as AWS's regions are), made at
        # validate rather than as a traceback when the first command builds a client
        if not _REGION.fullmatch(value):
            raise ValueError(f"region {value[:80]!r} is not an AWS region name (like us-east-1)")
        return value

    def identity(self, instance: str) -> tuple[str, ...]:
        return _identity(self.endpoint_url, self.region)

    def transport_warnings(self, name: str) -> list[str]:
        return [f"stores.{name}.endpoint_url is plain http to another host"] if plain_http(self.endpoint_url) else []


class AwsRef(StoreRefPart):
    secret_id: str
    """A secret's name or ARN (a grant: names or ARNs as a pattern, `prod/support/*`)."""
    instance: str = "aws"

    @classmethod
    def check_pattern(cls, name: str, pattern: str) -> str:
        if not AWS_SECRET_ID.fullmatch(pattern):
            raise ValueError(f"secret_id pattern {pattern!r} is not an AWS secret name or ARN")
        return pattern

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

    def identities(self, store: StoreSettings) -> list[tuple[tuple[str, ...], str | None]]:
        where = store.identity(self.instance)
        arn = _ARN.fullmatch(self.secret_id)
        if arn is None:
            return [((*where, self.secret_id), getattr(store, "account_id", None))]
        return [((*where, name), arn["account"]) for name in names_of(arn["resource"])]

    def granted(self, grant: Grant, store: StoreSettings) -> bool:
        wanted = grant.patterns.get("secret_id")
        if grant.store != self.instance or wanted is None or not isinstance(store, AwsStoreSettings):
            return False
        pattern, mine = _ARN.fullmatch(wanted), _ARN.fullmatch(self.secret_id)
        if pattern is None and mine is None:
            return fnmatch.fnmatchcase(self.secret_id, wanted)
        if pattern is not None and mine is not None:
            return fnmatch.fnmatchcase(self.secret_id, wanted)
        # one is a name, the other an ARN: the same secret only in the store's own account and region
        arn = mine or pattern
        assert arn is not None
        if store.account_id is None or arn["account"] != store.account_id or arn["region"] != store.region:
            return False
        if mine is not None:
            # every secret the ARN may resolve to must be granted by name
            return all(fnmatch.fnmatchcase(name, wanted) for name in names_of(mine["resource"]))
        assert pattern is not None
        return fnmatch.fnmatchcase(self.secret_id, pattern["resource"])

    def problems(self, store: StoreSettings) -> list[str]:
        arn = _ARN.fullmatch(self.secret_id)
        if arn is None or not isinstance(store, AwsStoreSettings):
            return []
        if arn["region"] != store.region:
            return [f"secret_id is an ARN in region {arn['region']}, but store {self.instance!r} is in {store.region}"]
        if store.account_id is not None and arn["account"] != store.account_id:
            return [
                f"secret_id is an ARN in account {arn['account']}, but store {self.instance!r} acts in "
                f"account {store.account_id}"
            ]
        return []


@functools.lru_cache(maxsize=64)
def _identity(endpoint_url: str | None, region: str) -> tuple[str, ...]:
    # AWS's own endpoints (regional, FIPS, VPC) reach one store per account and region, as no
    # endpoint does; any other (a moto server, a proxy) is a store of its own. Cached: every
    # secret of a fleet asks.
    host = urlsplit(endpoint_url or "").hostname or ""
    aws = not endpoint_url or host.endswith((".amazonaws.com", ".amazonaws.com.cn"))
    return ("aws", "" if aws else url_identity(endpoint_url), region)


_REGION = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_ARN = re.compile(r"arn:aws[a-z-]*:secretsmanager:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):secret:(?P<resource>.+)")
_SUFFIX = re.compile(r"(?P<name>.+)-[A-Za-z0-9]{6}")


def names_of(resource: str) -> tuple[str, ...]:
    """The secret names an ARN's resource part may stand for. AWS adds `-` and six random
    characters to a secret's name in its full ARN, and also accepts the ARN without them (a
    partial ARN): `app/key-AbC123` is the full ARN of `app/key` or the partial one of `app/key-AbC123`."""
    suffixed = _SUFFIX.fullmatch(resource)
    return (resource, suffixed["name"]) if suffixed else (resource,)


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
