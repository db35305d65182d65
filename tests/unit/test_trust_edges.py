"""Trust checks at their edges (concepts.md promise 9, "Security model"): a Vault grant is a mount
*and* a path, an ARN grant covers the ARNs it matches, and an `allowed_hosts` pattern with a port
allows that port only."""

from __future__ import annotations

import pytest

from rotator.plugin.settings import Grant
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
    assert VaultRef(mount="secret", path="team/app").granted(grant, VAULT)
    assert not VaultRef(mount="secret", path="team/app", instance="vault-eu").granted(grant, VAULT)
    assert not VaultRef(mount="kv", path="team/app").granted(grant, VAULT)
    assert not VaultRef(mount="secret", path="team/app").granted(Grant(store="vault", mount="kv", path="team/*"), VAULT)
    # slashes around a mount or path do not make another one (a grant is normalised as it is resolved)
    resolved = Grant.model_construct(
        store="vault", patterns=VaultRef.grant_patterns({"mount": "/secret/", "path": "/team/*"})
    )
    assert VaultRef(mount="secret", path="team/app").granted(resolved, VAULT)


def test_promise_9_a_grant_missing_a_field_of_its_store_grants_nothing() -> None:
    """A grant is resolved with every field of its store's locations (the mount's default); one
    that somehow lacks a field is no wildcard for it."""
    assert not VaultRef(mount="kv", path="team/app").granted(Grant(store="vault", path="team/*"), VAULT)
    assert VaultRef.grant_patterns({"path": "team/*"}) == {"mount": "secret", "path": "team/*"}


def test_promise_9_an_aws_grant_covers_only_names_it_matches_in_its_store() -> None:
    grant = Grant(store="aws", secret_id="prod/payments/*")
    assert AwsRef(secret_id="prod/payments/api").granted(grant, AWS)
    assert not AwsRef(secret_id="prod/support/api").granted(grant, AWS)
    assert not AwsRef(secret_id="prod/payments/api", instance="aws-eu").granted(grant, AWS)
    assert not VaultRef(mount="secret", path="prod/payments/api").granted(grant, VAULT)


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
    ("grant", "ref", "granted"),
    [
        (Grant(store="aws", secret_id="prod/app"), AwsRef(secret_id="prod/app"), True),
        (Grant(store="aws", secret_id="prod/app"), AwsRef(secret_id="prod/app-other"), False),  # not a prefix
        (Grant(store="aws", secret_id="prod/app"), AwsRef(secret_id="prod/application"), False),
        (Grant(store="aws", secret_id="prod/*/db"), AwsRef(secret_id="prod/x/db"), True),
        (Grant(store="aws", secret_id="prod/*/db"), AwsRef(secret_id="prod/x/cache"), False),  # the tail counts
        (Grant(store="vault", mount="secret", path="team/app"), VaultRef(path="team/app"), True),
        (Grant(store="vault", mount="secret", path="team/app"), VaultRef(path="team/app2"), False),
        (Grant(store="vault", mount="secret", path="team/app"), VaultRef(path="team/app/sub"), False),
        (Grant(store="vault", mount="secret", path="team/*/key"), VaultRef(path="team/x/other"), False),
    ],
)
def test_promise_9_a_grant_is_a_whole_pattern_never_a_prefix(
    grant: Grant, ref: AwsRef | VaultRef, granted: bool
) -> None:
    assert ref.granted(grant, AWS if isinstance(ref, AwsRef) else VAULT) is granted
