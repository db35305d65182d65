"""Teams and secret identity at `validate`: what one team's files may name, and one secret however
it is spelled. Each check at its edge: the spelling that is the same secret and the one that is not."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from rotator.app import App
from rotator.errors import InputError
from rotator.settings import config, policies
from rotator.stores.aws_settings import names_of

REPO = Path(__file__).resolve().parents[2]
ARN = "arn:aws:secretsmanager:eu-central-1:111122223333:secret:"


def settings(**extra: Any) -> config.Settings:
    base: dict[str, Any] = {
        "providers": {
            "bw-a": {
                "type": "brandwave",
                "base_url": "https://a",
                "grants": [{"secret_id": "a/*"}, {"secret_id": ARN + "a/*"}],
            },
            "bw-b": {"type": "brandwave", "base_url": "https://b", "grants": [{"secret_id": "b/*"}]},
        },
        "stores": {"aws": {"type": "aws", "region": "eu-central-1"}},
        "hooks": {
            "commands": {"restart-a": {"command": ["/bin/true"]}},
            "credentials": {"token-a": {"env": "TOKEN_A"}},
            "allowed_hosts": ["shared.internal"],
        },
    }
    base.update(extra)
    return config.Settings.model_validate(base)


TEAMS = {
    "team-a": {"policy_files": ["a*.yaml"], "providers": ["bw-a"], "commands": ["restart-a"],
               "credentials": ["token-a"], "allowed_hosts": ["a.internal"]},
    "team-b": {"policy_files": ["b.yaml"], "providers": ["bw-b"], "allowed_hosts": ["b.internal"]},
}  # fmt: skip


def secret(name: str, provider: str, secret_id: str, extra: str = "") -> str:
    return (
        f"  - name: {name}\n    provider: {provider}\n    store: {{aws: {{secret_id: '{secret_id}'}}}}\n"
        f"    policy: incident\n{extra}"
    )


def load(tmp_path: Path, files: dict[str, str], s: config.Settings) -> policies.PolicySet:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    return policies.load_dir(tmp_path, s)


def problems(tmp_path: Path, files: dict[str, str], s: config.Settings) -> str:
    with pytest.raises(InputError) as exc:
        load(tmp_path, files, s)
    return "\n".join(exc.value.problems)


def test_names_an_arn_may_stand_for() -> None:
    assert names_of("app/key-AbC123") == ("app/key-AbC123", "app/key")
    assert names_of("app/key") == ("app/key",)
    assert names_of("app/key-AbC12") == ("app/key-AbC12",)  # five characters: no suffix


@pytest.mark.parametrize(
    "spelling", [ARN + "a/app-AbC123", ARN + "a/app", "a/app-AbC123"], ids=["full", "partial", "suffixed-name"]
)
def test_one_secret_under_two_spellings_is_a_duplicate(tmp_path: Path, spelling: str) -> None:
    one = "secrets:\n" + secret("first", "bw-a", "a/app") + secret("second", "bw-a", spelling)
    if spelling == "a/app-AbC123":
        # a *name* with a suffix-like ending is another secret than a/app
        assert set(load(tmp_path, {"p.yaml": one}, settings()).secrets) == {"first", "second"}
        return
    assert "the same secret as secret 'first'" in problems(tmp_path, {"p.yaml": one}, settings())


def test_an_arn_of_another_account_is_another_secret(tmp_path: Path) -> None:
    s = settings(stores={"aws": {"type": "aws", "region": "eu-central-1", "account_id": "111122223333"}})
    other = ARN.replace("111122223333", "999988887777")
    files = {
        "p.yaml": "secrets:\n" + secret("first", "bw-a", ARN + "a/app") + secret("second", "bw-a", other + "a/app")
    }
    text = problems(tmp_path, files, s)
    assert "the same secret" not in text and "in account 999988887777" in text


def test_a_name_is_the_same_secret_as_the_arn_of_its_account_after_arns_of_others(tmp_path: Path) -> None:
    s = settings(stores={"aws": {"type": "aws", "region": "eu-central-1", "account_id": "111122223333"}})
    others = [ARN.replace("111122223333", account) for account in ("999988887777", "444455556666")]
    files = {
        "p.yaml": "secrets:\n"
        + secret("first", "bw-a", others[0] + "a/app")
        + secret("second", "bw-a", ARN + "a/app")
        + secret("third", "bw-a", others[1] + "a/app")
        + secret("fourth", "bw-a", "a/app")
    }
    text = problems(tmp_path, files, s)
    # three ARNs of three accounts are three secrets; the name is the one in the store's own account
    assert "secret 'fourth' names aws:a/app, the same secret as secret 'second'" in text
    assert text.count("the same secret as") == 1


def test_two_store_instances_of_one_region_hold_the_same_secrets(tmp_path: Path) -> None:
    s = settings(
        stores={"aws": {"type": "aws", "region": "eu-central-1"}, "aws2": {"type": "aws", "region": "eu-central-1"}},
        providers={
            "bw-a": {"type": "brandwave", "base_url": "https://a", "grants": [{"secret_id": "a/*"}]},
            "bw-b": {"type": "brandwave", "base_url": "https://b", "grants": [{"store": "aws2", "secret_id": "a/*"}]},
        },
    )
    second = "  - {name: second, provider: bw-b, store: {aws: {secret_id: a/app, instance: aws2}}, policy: incident}\n"
    files = {"p.yaml": "secrets:\n" + secret("first", "bw-a", "a/app") + second}
    assert "the same secret as secret 'first'" in problems(tmp_path, files, s)


def test_vault_namespace_and_mount_are_one_path(tmp_path: Path) -> None:
    vault = {"type": "vault", "url": "https://vault.internal:8200", "namespace": "team"}
    vault2 = {"type": "vault", "url": "https://VAULT.internal:8200/", "namespace": "team/kv"}
    grants = [{"store": "v1", "mount": "kv/secret", "path": "*"}, {"store": "v2", "mount": "secret", "path": "*"}]
    s = settings(
        stores={"v1": vault, "v2": vault2},
        providers={"bw": {"type": "brandwave", "base_url": "https://a", "grants": grants}},
    )
    files = {
        "p.yaml": "secrets:\n"
        "  - {name: one, provider: bw, store: {vault: {instance: v1, mount: kv/secret, path: app}}, policy: incident}\n"
        "  - {name: two, provider: bw, store: {vault: {instance: v2, mount: secret, path: app}}, policy: incident}\n"
    }
    assert "the same secret as secret 'one'" in problems(tmp_path, files, s)


def test_a_name_grant_covers_the_arn_of_the_same_secret_only_in_the_stores_account(tmp_path: Path) -> None:
    own = settings(
        stores={"aws": {"type": "aws", "region": "eu-central-1", "account_id": "111122223333"}},
        providers={"bw": {"type": "brandwave", "base_url": "https://a", "grants": [{"secret_id": "a/*"}]}},
    )
    ok = "secrets:\n" + secret("s", "bw", ARN + "a/app-AbC123")
    assert "s" in load(tmp_path, {"p.yaml": ok}, own).secrets
    unknown_account = settings(
        providers={"bw": {"type": "brandwave", "base_url": "https://a", "grants": [{"secret_id": "a/*"}]}}
    )
    assert "may not serve" in problems(tmp_path, {"p.yaml": ok}, unknown_account)
    outside = "secrets:\n" + secret("s", "bw", ARN + "b/app-AbC123")
    assert "may not serve" in problems(tmp_path, {"p.yaml": outside}, own)
    other_region = "secrets:\n" + secret("s", "bw", ARN.replace("eu-central-1", "us-east-1") + "a/app")
    assert "in region us-east-1, but store 'aws' is in eu-central-1" in problems(
        tmp_path, {"p.yaml": other_region}, own
    )


def test_every_file_belongs_to_exactly_one_team(tmp_path: Path) -> None:
    s = settings(teams=TEAMS)
    good = {"a.yaml": "secrets:\n" + secret("sa", "bw-a", "a/x"), "b.yaml": "secrets:\n" + secret("sb", "bw-b", "b/x")}
    loaded = load(tmp_path, good, s)
    assert (loaded.team_of("sa"), loaded.team_of("sb")) == ("team-a", "team-b")
    assert "no team in rotator.yaml owns this policy file" in problems(tmp_path, {"c.yaml": "secrets: []\n"}, s)
    (tmp_path / "c.yaml").unlink()
    both = settings(teams={**TEAMS, "team-b": {**TEAMS["team-b"], "policy_files": ["b.yaml", "a*.yaml"]}})
    assert "owned by several teams (team-a, team-b)" in problems(tmp_path, {}, both)


@pytest.mark.parametrize(
    ("extra", "provider", "fragment"),
    [
        ("", "bw-a", "team 'team-b' may not use provider 'bw-a'"),
        ("    consumers: [{name: c, reload: {command: restart-a}}]\n", "bw-b", "unknown command hook 'restart-a'"),
        (
            "    consumers: [{name: c, reload: {http: {url: 'https://b.internal/r', "
            "headers: {X-T: {credential: token-a}}}}}]\n",
            "bw-b",
            "unknown credential 'token-a'",
        ),
        ("    consumers: [{name: c, reload: {http: {url: 'https://a.internal/r'}}}]\n", "bw-b", "'a.internal' is not"),
        ("    access: [team:oncall-a]\n", "bw-b", "unknown team 'team:oncall-a'"),
    ],
)
def test_a_team_reaches_only_its_own_allowances(tmp_path: Path, extra: str, provider: str, fragment: str) -> None:
    s = settings(teams=TEAMS)
    files = {
        "a.yaml": "teams: {oncall-a: [ann@example.com]}\nsecrets:\n" + secret("sa", "bw-a", "a/x"),
        "b.yaml": "secrets:\n" + secret("sb", provider, "b/x", extra),
    }
    text = problems(tmp_path, files, s)
    assert fragment in text and "b.yaml:" in text and "a.yaml:" not in text


def test_a_team_reaches_shared_hosts_and_its_own(tmp_path: Path) -> None:
    s = settings(teams=TEAMS)
    hooks = (
        "    consumers: [{name: c, reload: {http: {url: 'https://shared.internal/r'}},"
        " confirm: {http: {url: 'https://b.internal/c'}}}]\n"
    )
    files = {"a.yaml": "secrets: []\n", "b.yaml": "secrets:\n" + secret("sb", "bw-b", "b/x", hooks)}
    assert "sb" in load(tmp_path, files, s).secrets


def test_a_team_follows_only_its_own_policies(tmp_path: Path) -> None:
    s = settings(teams=TEAMS)
    files = {
        "a.yaml": "policies: {a-fast: {cutover: {max_wait: 1s, on_timeout: revoke}}}\nsecrets: []\n",
        "b.yaml": "secrets:\n" + secret("sb", "bw-b", "b/x").replace("policy: incident", "policy: a-fast"),
    }
    assert "names policy 'a-fast' of team 'team-a'" in problems(tmp_path, files, s)


@pytest.mark.parametrize("name", ["incident", "offboarding"])
def test_the_built_in_policies_are_the_operators(tmp_path: Path, name: str) -> None:
    text = f"policies:\n  {name}: {{cutover: {{on_timeout: hold}}}}\nsecrets: []\n"
    assert f"p.yaml:2: policy {name!r} is built in" in problems(tmp_path, {"p.yaml": text}, settings())
    tuned = settings(policies={name: {"cutover": {"min_soak": "1m", "on_timeout": "revoke"}}})
    loaded = load(tmp_path, {"p.yaml": "secrets: []\n"}, tuned)
    assert loaded.policies[name].cutover.min_soak.total_seconds() == 60


def test_rotator_yaml_may_tune_only_the_built_in_policies() -> None:
    with pytest.raises(Exception, match="incident"):
        settings(policies={"quarterly": {}})


HOOK = "    consumers: [{name: c, reload: {http: {url: 'https://shared.internal/r', headers: {'HEADER': v}}}}]\n"


@pytest.mark.parametrize(
    "header",
    ["Host", "host", "Content-Length", "Transfer-Encoding", "Connection", "Forwarded", "X-Forwarded-For",
     "x-forwarded-host", "X-Real-IP", "Proxy-Authorization", "Upgrade", "TE", "X-HTTP-Method-Override", "Bad Name",
     "X-Forwarded", "X-Host", "X-HTTP-Host-Override", "True-Client-IP", "X-Client-IP", "CF-Connecting-IP",
     "X-Scheme", "X-Url-Scheme", "Front-End-Https", "Max-Forwards", "Alt-Used", "X-Override-URL",
     "X-Accel-Mapping", "X-Sendfile-Type", "X-Original-URL"],
)  # fmt: skip
def test_a_header_that_routes_or_frames_a_request_is_refused(tmp_path: Path, header: str) -> None:
    hook = HOOK.replace("HEADER", header)
    text = problems(tmp_path, {"p.yaml": "secrets:\n" + secret("s", "bw-a", "a/x", hook)}, settings())
    assert "p.yaml:" in text and repr(header) in text


@pytest.mark.parametrize("header", ["Authorization", "X-Token", "X-Api-Key", "Accept"])
def test_ordinary_headers_are_allowed(tmp_path: Path, header: str) -> None:
    hook = HOOK.replace("HEADER", header)
    assert "s" in load(tmp_path, {"p.yaml": "secrets:\n" + secret("s", "bw-a", "a/x", hook)}, settings()).secrets


def test_a_team_names_only_what_rotator_yaml_defines(tmp_path: Path) -> None:
    path = tmp_path / "rotator.yaml"
    path.write_text("teams:\n  x:\n    policy_files: [x.yaml]\n    commands: [nope]\n")
    with pytest.raises(InputError) as exc:
        config.load(path, environ={})
    assert exc.value.problems == [
        f"{path}:4: teams.x.commands names 'nope', which is not in hooks.commands (known: none)"
    ]


def test_people_groups_are_the_teams_own(tmp_path: Path) -> None:
    s = settings(teams=TEAMS)
    files = {
        "a.yaml": "teams: {oncall: [ann@example.com]}\nsecrets:\n"
        + secret("sa", "bw-a", "a/x", "    access: [team:oncall]\n"),
        "b.yaml": "teams: {oncall: [mallory@example.com]}\nsecrets:\n"
        + secret("sb", "bw-b", "b/x", "    access: [team:oncall]\n"),
    }
    loaded = load(tmp_path, files, s)
    assert loaded.groups_of("sa") == {"oncall": ["ann@example.com"]}
    assert loaded.groups_of("sb") == {"oncall": ["mallory@example.com"]}


def test_a_link_inside_the_directory_is_read_and_one_outside_is_refused(tmp_path: Path) -> None:
    inside = tmp_path / "policies"
    inside.mkdir()
    (inside / "real.yaml").write_text("secrets:\n" + secret("s", "bw-a", "a/x"))
    (inside / "alias.yml").symlink_to(inside / "real.yaml")
    assert "already defined" in problems(inside, {}, settings())  # read (twice), not refused
    (inside / "alias.yml").unlink()
    (tmp_path / "outside.yaml").write_text("secrets: []\n")
    (inside / "evil.yaml").symlink_to(tmp_path / "outside.yaml")
    assert f"{inside / 'evil.yaml'}:1: a symbolic link to" in problems(inside, {}, settings())


def test_the_two_team_example_validates() -> None:
    app = App.load(REPO / "deploy" / "two-teams" / "rotator.yaml")
    assert app.policies.team_of("payments-brandwave") == "payments"
    assert set(app.settings.hooks_for("support").commands) == set()
    assert set(app.settings.hooks_for("payments").commands) == {"restart-payments"}


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("http://shared.internal:99999/x", "not a URL"),
        ("http://shared.internal:abc/x", "not a URL"),
        ("http://shared.internal/ok\\tx", "control character"),
        ("http://shared.internal/" + "a" * 70000, "line longer than 64 KiB"),
        ("http://sh\\u00adared.internal/x", "not a URL"),
    ],
)
def test_a_hook_url_a_request_could_not_be_built_from_is_refused(tmp_path: Path, url: str, fragment: str) -> None:
    hook = f'    consumers: [{{name: c, reload: {{http: {{url: "{url}"}}}}}}]\n'
    text = problems(tmp_path, {"p.yaml": "secrets:\n" + secret("s", "bw-a", "a/x", hook)}, settings())
    assert "p.yaml:" in text and fragment in text, text[:300]


def test_a_merged_key_is_judged_with_a_line_not_a_traceback(tmp_path: Path) -> None:
    merged = "policies: {<<: {incident: {cutover: {min_soak: 0s}}}}\nsecrets: []\n"
    assert "p.yaml:1: policy 'incident' is built in" in problems(tmp_path, {"p.yaml": merged}, settings())
    text = "secrets: [{<<: {provider: bw-a, policy: nope}, name: x, store: {aws: {secret_id: a/x}}}]\n"
    assert "p.yaml:1: secret 'x' names unknown policy 'nope'" in problems(tmp_path, {"p.yaml": text}, settings())


@pytest.mark.parametrize("shape", ["loop", "chain", "dangling", "directory"])
def test_a_policy_path_that_is_no_file_is_refused(tmp_path: Path, shape: str) -> None:
    folder = tmp_path / "policies"
    folder.mkdir()
    if shape == "loop":
        (folder / "b.yaml").symlink_to(folder / "b.yaml")
    elif shape == "chain":
        (folder / "b.yaml").symlink_to(folder / "c.yaml")
        (folder / "c.yaml").symlink_to(folder / "b.yaml")
    elif shape == "dangling":
        (folder / "b.yaml").symlink_to(folder / "gone.txt")
    else:
        (folder / "b.yaml").mkdir()
    assert f"{folder / 'b.yaml'}:1:" in problems(folder, {}, settings())


@pytest.mark.parametrize(
    "endpoint",
    [
        "https://secretsmanager.eu-central-1.amazonaws.com",
        "https://vpce-0a1b.secretsmanager.eu-central-1.vpce.amazonaws.com",
    ],
)
def test_aws_own_endpoints_are_the_same_store_as_none(tmp_path: Path, endpoint: str) -> None:
    s = settings(
        stores={
            "aws": {"type": "aws", "region": "eu-central-1"},
            "aws2": {"type": "aws", "region": "eu-central-1", "endpoint_url": endpoint},
        },
        providers={
            "bw": {
                "type": "brandwave",
                "base_url": "https://a",
                "grants": [{"secret_id": "a/*"}, {"store": "aws2", "secret_id": "a/*"}],
            }
        },
    )
    second = "  - {name: second, provider: bw, store: {aws: {secret_id: a/app, instance: aws2}}, policy: incident}\n"
    files = {"p.yaml": "secrets:\n" + secret("first", "bw", "a/app") + second}
    assert "the same secret as secret 'first'" in problems(tmp_path, files, s)


HOOKS_OUTSIDE = (
    "    consumers:\n"
    "      - name: c\n"
    "        reload:\n"
    "          command: restart-b\n"
    "        confirm:\n"
    "          http:\n"
    "            url: 'https://evil.example:8443/c'\n"
    "            headers: {X-T: {credential: token-b}}\n"
    "    access: [team:nobody]\n"
)


def test_what_a_secret_may_not_use_is_named_at_its_own_line_with_what_is_allowed(tmp_path: Path) -> None:
    """Promises 7 and 9: each hook, credential, team and store a secret names outside what
    rotator.yaml defines is refused at the line that names it, with what may be named instead."""
    s = settings(
        hooks={
            "commands": {"restart-a": {"command": ["/bin/true"]}, "restart-c": {"command": ["/bin/true"]}},
            "credentials": {"token-a": {"env": "TOKEN_A"}, "token-c": {"env": "TOKEN_C"}},
            "allowed_hosts": ["shared.internal", "*.example:443"],
        }
    )
    elsewhere = secret("t", "bw-a", "a/y").replace("secret_id: 'a/y'", "secret_id: 'a/y', instance: aws-eu")
    text = "secrets:\n" + secret("s", "bw-a", "a/x", HOOKS_OUTSIDE) + elsewhere
    p = tmp_path / "p.yaml"
    assert problems(tmp_path, {"p.yaml": text}, s).splitlines() == [
        f"{p}:9: unknown command hook 'restart-b' (known: restart-a, restart-c; commands are defined in "
        "rotator.yaml hooks.commands)",
        f"{p}:12: hook URL host 'evil.example' is not allowed; rotator.yaml allows shared.internal, *.example:443",
        f"{p}:13: header 'X-T' names unknown credential 'token-b' (known: token-a, token-c; define it in "
        "rotator.yaml hooks.credentials)",
        f"{p}:14: secret 's' names unknown team 'team:nobody' (teams: none defined)",
        f"{p}:17: secret 't' names unknown aws store 'aws-eu' (known: aws (aws))",
    ]


def test_what_a_teams_secret_may_not_use_is_named_with_the_teams_own_allowances(tmp_path: Path) -> None:
    files = {
        "a.yaml": "teams: {oncall-a: [ann@example.com]}\nsecrets: []\n",
        "b.yaml": "secrets:\n" + secret("sb", "bw-b", "b/x", HOOKS_OUTSIDE),
    }
    b = tmp_path / "b.yaml"
    assert problems(tmp_path, files, settings(teams=TEAMS)).splitlines() == [
        f"{b}:9: unknown command hook 'restart-b' (known for team 'team-b': none; commands are defined in "
        "rotator.yaml hooks.commands and allowed in rotator.yaml teams.team-b.commands)",
        f"{b}:12: hook URL host 'evil.example' is not allowed; rotator.yaml allows shared.internal, b.internal "
        "for team 'team-b'",
        f"{b}:13: header 'X-T' names unknown credential 'token-b' (known for team 'team-b': none; define it in "
        "rotator.yaml hooks.credentials and allow it in rotator.yaml teams.team-b.credentials)",
        f"{b}:14: secret 'sb' names unknown team 'team:nobody' (teams of 'team-b' files: none defined)",
    ]


def test_a_secret_naming_what_a_clean_one_named_still_has_its_own_location_judged(tmp_path: Path) -> None:
    # references a clean secret named are checked once per load (a fleet's 100,000 name a handful);
    # the location never is: the tenth secret outside the grant is refused like the first
    clean = "".join(secret(f"s{i}", "bw-a", f"a/{i}") for i in range(9))
    files = {"a.yaml": "secrets:\n" + clean + secret("s9", "bw-a", "b/9") + secret("s10", "bw-a", "a/0")}
    text = problems(tmp_path, files, settings())
    assert "secret 's9': provider 'bw-a' may not serve aws:b/9" in text
    assert "'s10' names aws:a/0, the same secret as secret 's0'" in text
    assert len(text.splitlines()) == 2
