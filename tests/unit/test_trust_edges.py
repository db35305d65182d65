"""Trust checks at their edges (concepts.md promise 9, "Security model"): a Vault grant is a mount
*and* a path, an ARN grant covers the ARNs it matches, and an `allowed_hosts` pattern with a port
allows that port only."""

from __future__ import annotations

import pytest

from rotator.config_parts import Grant
from rotator.settings.models import HooksSettings
from rotator.stores.aws_settings import AwsRef, AwsStoreSettings
from rotator.stores.vault_settings import VaultRef, VaultStoreSettings

VAULT = VaultStoreSettings.model_validate(
    {"type": "vault", "url": "https://vault.internal:8200", "auth": {"token": {"env": "T"}}}
)
AWS = AwsStoreSettings.model_validate({"type": "aws", "region": "us-east-1"})


@pytest.mark.parametrize(
    ("mount", "path", "granted"),
    [
        ("secret", "team/app", True),
        ("kv", "team/app", False),  # the same path on another mount is another secret
        ("secret", "other/app", False),
        ("secret", "team", False),
    ],
)
def test_promise_9_a_vault_grant_is_its_mount_and_its_path(mount: str, path: str, granted: bool) -> None:
    grant = Grant(store="vault", mount="secret", path="team/*")
    assert VaultRef(mount=mount, path=path).granted(grant, VAULT) is granted


def test_promise_9_a_vault_grant_covers_only_its_own_store_instance() -> None:
    grant = Grant(store="vault", mount="secret", path="team/*")
    assert grant.covers(store="vault", location="secret:team/app")
    assert not grant.covers(store="vault-eu", location="secret:team/app")
    assert not grant.covers(store="vault", location="kv:team/app")
    assert not Grant(store="vault", mount="kv", path="team/*").covers(store="vault", location="secret:team/app")
    # slashes around a mount or path do not make another one
    assert Grant(store="vault", mount="/secret/", path="/team/*").covers(store="vault", location="secret:team/app")


def test_promise_9_an_aws_grant_covers_only_names_it_matches_in_its_store() -> None:
    grant = Grant(store="aws", secret_id="prod/payments/*")
    assert AwsRef(secret_id="prod/payments/api").granted(grant, AWS)
    assert not AwsRef(secret_id="prod/support/api").granted(grant, AWS)
    assert not AwsRef(secret_id="prod/payments/api", instance="aws-eu").granted(grant, AWS)
    assert not grant.covers(store="vault", location="prod/payments/api")
    # the same grant as a store type without an AWS reference of its own reads it
    assert grant.covers(store="aws", location="prod/payments/api")
    assert not grant.covers(store="aws", location="prod/support/api")


def test_promise_9_an_arn_grant_covers_only_the_arns_it_matches() -> None:
    arn = "arn:aws:secretsmanager:us-east-1:111122223333:secret:"
    grant = Grant(store="aws", secret_id=arn + "prod/payments/*")
    assert AwsRef(secret_id=arn + "prod/payments/api-AbCdEf").granted(grant, AWS)
    assert not AwsRef(secret_id=arn + "prod/support/api-AbCdEf").granted(grant, AWS)
    other_account = "arn:aws:secretsmanager:us-east-1:444455556666:secret:prod/payments/api-AbCdEf"
    assert not AwsRef(secret_id=other_account).granted(grant, AWS)


@pytest.mark.parametrize(
    ("host", "port", "allowed"),
    [
        ("payments-api.internal", 8443, True),
        ("payments-api.internal", 9443, False),  # another port
        ("payments-api.internal", None, False),  # no port: the scheme's, which the pattern does not name
        ("other.internal", 8443, False),
    ],
)
def test_promise_9_an_allowed_host_with_a_port_allows_that_port_only(
    host: str, port: int | None, allowed: bool
) -> None:
    assert HooksSettings(allowed_hosts=["payments-api.internal:8443"]).allows(host, port) is allowed


@pytest.mark.parametrize(
    ("host", "port", "allowed"),
    [
        ("a.support.internal", None, True),
        ("a.support.internal", 8080, True),  # a pattern without a port allows any
        ("support.internal", None, False),
        ("a.support.internal.evil.example", 443, False),
    ],
)
def test_promise_9_an_allowed_host_without_a_port_allows_any_port(host: str, port: int | None, allowed: bool) -> None:
    assert HooksSettings(allowed_hosts=["*.support.internal"]).allows(host, port) is allowed


def test_promise_9_no_allowed_hosts_allow_nothing_and_patterns_ignore_case() -> None:
    assert not HooksSettings().allows("127.0.0.1", 80)
    hooks = HooksSettings(allowed_hosts=["other.internal", "API.Internal:8443"])
    assert hooks.allows("api.internal", 8443) and not hooks.allows("api.internal", 8444)


@pytest.mark.parametrize(
    ("grant", "location", "granted"),
    [
        (Grant(store="aws", secret_id="prod/app"), "prod/app", True),
        (Grant(store="aws", secret_id="prod/app"), "prod/app-other", False),  # a name is not a prefix
        (Grant(store="aws", secret_id="prod/app"), "prod/application", False),
        (Grant(store="aws", secret_id="prod/*/db"), "prod/x/db", True),
        (Grant(store="aws", secret_id="prod/*/db"), "prod/x/cache", False),  # the pattern's tail counts
        (Grant(store="vault", mount="secret", path="team/app"), "secret:team/app", True),
        (Grant(store="vault", mount="secret", path="team/app"), "secret:team/app2", False),
        (Grant(store="vault", mount="secret", path="team/app"), "secret:team/app/sub", False),
        (Grant(store="vault", mount="secret", path="team/*/key"), "secret:team/x/other", False),
    ],
)
def test_promise_9_a_grant_is_a_whole_pattern_never_a_prefix(grant: Grant, location: str, granted: bool) -> None:
    assert grant.covers(store=grant.store, location=location) is granted
