from datetime import timedelta
from pathlib import Path

import pytest

from rotator.errors import InputError
from rotator.settings import config

YAML = """\
state: {url: "sqlite:///x.db"}
providers:
  brandwave-prod:
    type: brandwave
    base_url: https://api.gobrandwave.com
    admin_token: {env: BW_TOKEN}
"""


def test_embedded_defaults_need_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With no rotator.yaml, state goes to SQLite in systemd's STATE_DIRECTORY."""
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path))
    settings = config.load(None, environ={})
    assert settings.state_url() == f"sqlite:///{tmp_path / 'rotator.db'}"
    assert "aws" in settings.stores


def test_state_directory_wins_over_the_environment_and_is_relative_to_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A host's daemon ($STATE_DIRECTORY set by systemd) and its commands (no such variable) must
    reach one state: state.directory names it for both."""
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "systemd"))
    path = tmp_path / "etc" / "rotator.yaml"
    path.parent.mkdir()
    path.write_text("state: {directory: ../var}\n")
    settings = config.load(path, environ={})
    assert settings.state_url() == f"sqlite:///{tmp_path / 'etc' / '..' / 'var' / 'rotator.db'}"
    assert (tmp_path / "var").is_dir() and not (tmp_path / "systemd").exists()
    monkeypatch.delenv("STATE_DIRECTORY")
    overridden = config.load(path, environ={"ROTATOR_STATE__DIRECTORY": str(tmp_path / "other")})
    assert overridden.state_dir() == tmp_path / "other"


def test_an_empty_state_directory_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "rotator.yaml"
    path.write_text('state: {directory: ""}\n')
    with pytest.raises(InputError, match=r"rotator.yaml:1: .*state.directory is empty"):
        config.load(path, environ={})


def test_environment_overrides_file(tmp_path: Path) -> None:
    """ROTATOR_… variables win over rotator.yaml, including inside named provider instances."""
    path = tmp_path / "rotator.yaml"
    path.write_text(YAML)
    settings = config.load(
        path,
        environ={
            "ROTATOR_STATE__URL": "postgresql://db/rotator",
            "ROTATOR_PROVIDERS__BRANDWAVE_PROD__BASE_URL": "http://127.0.0.1:9",
            "ROTATOR_ENGINE__PROBE_DEADLINE": "30s",
        },
    )
    assert settings.state.url == "postgresql://db/rotator"
    assert settings.providers["brandwave-prod"].base_url == "http://127.0.0.1:9"
    assert settings.engine.probe_deadline == timedelta(seconds=30)
    assert settings.policies_dir == tmp_path / "policies"


def test_bad_config_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "rotator.yaml"
    path.write_text(YAML.replace("admin_token: {env: BW_TOKEN}", "admin_token: {env: BW_TOKEN, file: /x}"))
    with pytest.raises(InputError) as exc:
        config.load(path, environ={})
    assert exc.value.problems[0].startswith(f"{path}:6:")
    assert "exactly one of env, file or current" in exc.value.problems[0]


def test_unknown_provider_type_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "rotator.yaml"
    path.write_text(YAML.replace("type: brandwave", "type: acme"))
    with pytest.raises(InputError) as exc:
        config.load(path, environ={})
    assert f"{path}:4:" in exc.value.problems[0]


def test_an_unknown_override_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="environment variable ROTATOR_STAT__URL: no such setting"):
        config.load(None, environ={"ROTATOR_STAT__URL": "sqlite://"})


BOLTLY = """\
providers:
  bo:
    type: boltly
    email: rotator@example.com
    refresh_token_store: {{vault: {{path: rotator/bo-refresh}}}}
{extra}"""


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (
            "",
            "rotator.yaml:5: providers.bo.refresh_token_store names store 'vault', which is not in stores (known: aws)",
        ),
        ("    refresh_token_file: /tmp/bo.refresh\n", "rotator.yaml:2: providers.bo.boltly: keep the refresh token in"),
    ],
)
def test_the_boltly_refresh_tokens_place_is_checked(tmp_path: Path, extra: str, expected: str) -> None:
    path = tmp_path / "rotator.yaml"
    path.write_text(BOLTLY.format(extra=extra))
    with pytest.raises(InputError) as caught:
        config.load(path, environ={})
    assert any(expected in problem for problem in caught.value.problems), caught.value.problems


GRANTS = """\
providers:
  bw:
    type: brandwave
    base_url: https://api.brandwave.example
    admin_token: {{env: BW}}
    grants:
{grants}
stores:
  aws: {{type: aws, region: us-east-1}}
  aws-eu: {{type: aws, region: eu-west-1}}
  vault: {{type: vault, url: "https://vault.internal:8200", auth: {{token: {{env: T}}}}}}
"""


def _grants(tmp_path: Path, grants: str) -> config.Settings:
    (tmp_path / "rotator.yaml").write_text(GRANTS.format(grants=grants))
    return config.load(tmp_path / "rotator.yaml", environ={})


def test_a_grant_takes_the_store_named_like_its_type_and_the_types_defaults(tmp_path: Path) -> None:
    settings = _grants(tmp_path, '      - {secret_id: "prod/*"}\n      - {path: "team/*"}\n')
    aws, vault = settings.providers["bw"].grants
    assert (aws.store, aws.patterns) == ("aws", {"secret_id": "prod/*"})
    assert (vault.store, vault.patterns) == ("vault", {"mount": "secret", "path": "team/*"})
    assert vault.describe() == "vault:secret:team/*"  # as the secret's place is said: mount, then path


@pytest.mark.parametrize(
    ("grant", "problem"),
    [
        ('{store: aws-us, secret_id: "prod/*"}', "store 'aws-us' is not in stores"),
        ('{store: aws, path: "team/*"}', "path: not a field of this store's locations (fields: secret_id)"),
        ('{store: vault, mount: "se*", path: "team/*"}', "grant mount"),
        ('{store: aws, secret_id: "prod app"}', "is not an AWS secret name or ARN"),
        ('{bucket: "b/*"}', "no store instance has locations with bucket"),
        ("{store: vault}", "a grant names a store location"),
        ("{secret_id: [a]}", "a grant's fields are text patterns"),
        ('{patterns: {secret_id: "*"}}', "unknown field 'patterns'"),
        ('{store: null, secret_id: "*"}', "null is not a value here"),
    ],
)
def test_a_grant_its_store_cannot_take_is_refused_at_its_line(tmp_path: Path, grant: str, problem: str) -> None:
    with pytest.raises(InputError) as exc:
        _grants(tmp_path, f'      - {{secret_id: "ok/*"}}\n      - {grant}\n')
    (message,) = exc.value.problems
    assert message.startswith(f"{tmp_path / 'rotator.yaml'}:8:") and problem in message, message


def test_a_grant_set_by_the_environment_is_refused_naming_the_variable(tmp_path: Path) -> None:
    (tmp_path / "rotator.yaml").write_text(GRANTS.format(grants='      - {secret_id: "ok/*"}\n'))
    environ = {"ROTATOR_PROVIDERS__BW__GRANTS": '[{"store": "nope", "secret_id": "*"}]'}
    with pytest.raises(InputError) as exc:
        config.load(tmp_path / "rotator.yaml", environ=environ)
    (message,) = exc.value.problems
    assert message.startswith("environment variable ROTATOR_PROVIDERS__BW__GRANTS: providers.bw.grants[0]: store")
