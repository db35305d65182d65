"""Misconfiguration fails in seconds with the fix named, and changes nothing."""

from __future__ import annotations

import os
import time

import pytest

from tests.e2e.test_trust import admin_from_env
from tests.support.provider_world import ProviderWorld

pytestmark = pytest.mark.e2e

NO_AWS = {
    "AWS_ACCESS_KEY_ID": "",
    "AWS_SECRET_ACCESS_KEY": "",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
    "AWS_CONFIG_FILE": "/nonexistent",
}


def _without_aws(env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in {**os.environ, **env}.items() if not (k.startswith("AWS_") and not v)}


@pytest.mark.parametrize("provider_world", ["brandwave"], indirect=True)
def test_rotate_without_aws_credentials_exits_2_in_seconds_naming_the_fix(provider_world: ProviderWorld) -> None:
    w = provider_world
    import subprocess
    import sys

    def timed(*args: str) -> tuple[subprocess.CompletedProcess[str], float]:
        started = time.monotonic()
        result = subprocess.run(
            [sys.executable, "-m", "rotator", *args],
            env={**_without_aws(NO_AWS), "ROTATOR_CONFIG": str(w.dir / "rotator.yaml")},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        return result, time.monotonic() - started

    # what starting the command and reading its configuration costs on this machine now: a busy
    # machine took 12 s for what an idle one does in 2 (retrying the missing credentials took minutes)
    _, start_up = timed("validate", "--offline")
    result, elapsed = timed("rotate", w.name)
    assert result.returncode == 2, result.stdout + result.stderr
    assert elapsed < 2 * start_up + 5, (elapsed, start_up)
    assert "no AWS credentials" in result.stderr and "AWS_ACCESS_KEY_ID" in result.stderr
    assert "Traceback" not in result.stderr
    assert w.app().db.rotations_of(w.name) == []  # nothing recorded, nothing sent to the provider


@pytest.mark.parametrize("provider_world", ["brandwave"], indirect=True)
def test_a_refused_admin_credential_exits_2_and_check_names_it(provider_world: ProviderWorld) -> None:
    w = provider_world
    admin_from_env(w)
    w.env["RT_ADMIN"] = "bwpat_" + "x" * 40
    result = w.cli("rotate", w.name)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "provider p" in result.stderr and "admin credential" in result.stderr
    assert w.app().db.rotations_of(w.name) == []
    checked = w.cli("check", "--json")
    assert checked.returncode == 1
    import json

    report = json.loads(checked.stdout)
    failed = [c for c in report["checks"] if not c["ok"]]
    assert [c["item"] for c in failed] == ["provider p"]


@pytest.mark.parametrize("provider_world", ["brandwave"], indirect=True)
def test_check_proves_every_permission_and_changes_nothing(provider_world: ProviderWorld) -> None:
    w = provider_world
    before = w.sm.describe_secret(SecretId=w.secret_id)
    result = w.cli("check")
    assert result.returncode == 0, result.stdout + result.stderr
    for what in ("provider p", "write pending (PutSecretValue)", "move stages", "tag (TagResource)"):
        assert what in result.stdout
    after = w.sm.describe_secret(SecretId=w.secret_id)
    assert after["VersionIdsToStages"] == before["VersionIdsToStages"]
    assert w.current()["api_key"] == w.first["secret"]


def test_check_on_vault_reads_capabilities(vault_world: object) -> None:
    from tests.support.world import World

    assert isinstance(vault_world, World)
    result = vault_world.cli("check")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "promote (CAS write): allowed" in result.stdout and "write pending: allowed" in result.stdout
