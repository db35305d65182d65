"""incident, offboard and plan over many secrets, the CLI as a process."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from mypy_boto3_secretsmanager import SecretsManagerClient
from rotator_sandbox.server import Running

from rotator.state.db import StateDB
from tests.support.provider_world import BOLTLY_SCOPES

pytestmark = pytest.mark.e2e


@dataclass
class Fleet:
    """Many secrets across Brandwave and Boltly, each holding its own first key."""

    dir: Path
    sandboxes: dict[str, Running]
    keys: dict[str, dict[str, Any]] = field(default_factory=dict)  # secret → first key
    kinds: dict[str, str] = field(default_factory=dict)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "ROTATOR_CONFIG": str(self.dir / "rotator.yaml")}
        return subprocess.run(
            [sys.executable, "-m", "rotator", *args], env=env, capture_output=True, text=True, timeout=300, check=False
        )

    def revoked(self, secret: str) -> bool:
        sandbox = self.sandboxes[self.kinds[secret]]
        keys = httpx.get(f"{sandbox.base_url}/_sandbox/keys").json()["keys"]
        return bool(next(k for k in keys if k["id"] == self.keys[secret]["id"])["revoked"])


def build_fleet(
    tmp: Path,
    sandboxes: dict[str, Running],
    aws: str,
    sm: SecretsManagerClient,
    n: int,
    access: dict[int, list[str]] | None = None,
    teams: str = "",
    kinds: tuple[str, ...] = ("brandwave", "boltly"),
) -> Fleet:
    fleet = Fleet(tmp, sandboxes)
    tag = uuid.uuid4().hex[:6]
    email, password, account = f"ops-{tag}@example.com", uuid.uuid4().hex, f"acct_{tag}"
    httpx.post(
        f"{sandboxes['boltly'].base_url}/_sandbox/users",
        json={"email": email, "password": password, "account": account},
    ).raise_for_status()
    (tmp / "pw").write_text(password)
    secrets = []
    for i in range(n):
        kind = kinds[i % len(kinds)]
        name = f"{kind}-{tag}-{i:02d}"
        body: dict[str, Any] = {"name": f"app-{name}", "account": account}
        if kind == "boltly":
            body["scopes"] = BOLTLY_SCOPES
        first = httpx.post(f"{sandboxes[kind].base_url}/_sandbox/keys", json=body).json()
        fleet.keys[name], fleet.kinds[name] = first, kind
        sm.create_secret(
            Name=f"fleet/{name}",
            SecretString=json.dumps(
                {"api_key": first["secret"], "key_id": first["id"], "provider": kind, "rotated_at": first["created_at"]}
            ),
        )
        who = (access or {}).get(i, [])
        secrets.append(
            f"  - {{name: {name}, provider: {'bw' if kind == 'brandwave' else 'bo'}, policy: quarterly,"
            f" store: {{aws: {{secret_id: fleet/{name}}}}}, access: {json.dumps(who)}}}"
        )
    (tmp / "policies").mkdir()
    (tmp / "policies" / "fleet.yaml").write_text(
        "policies:\n  quarterly: {max_age: 90d, cutover: {min_soak: 1h, max_wait: 48h, on_timeout: hold}}\n"
        f"{teams}secrets:\n" + "\n".join(secrets) + "\n"
    )
    (tmp / "rotator.yaml").write_text(f"""\
state: {{url: "sqlite:///{tmp}/state.db"}}
providers:
  bw: {{type: brandwave, base_url: "{sandboxes["brandwave"].api_url}", admin_token: {{current: true}}, timeout: 2s,
       grants: [{{secret_id: "fleet/*"}}]}}
  bo: {{type: boltly, base_url: "{sandboxes["boltly"].api_url}", email: {email}, password: {{file: {tmp}/pw}},
        refresh_token_file: {tmp}/bo.refresh, timeout: 2s, grants: [{{secret_id: "fleet/*"}}]}}
stores:
  aws: {{type: aws, region: us-east-1, endpoint_url: "{aws}"}}
engine: {{verify_interval: 200ms, retry_base: 100ms, retry_max: 1s, probe_deadline: 2s}}
policies:
  offboarding: {{cutover: {{min_soak: 0s, max_wait: 1m, on_timeout: revoke}}}}
""")
    return fleet


def test_incident_over_fifty_secrets_kills_every_old_key_and_isolates_a_failure(
    tmp_path: Path, sandboxes: dict[str, Running], aws_url: str, sm: SecretsManagerClient
) -> None:
    fleet = build_fleet(tmp_path, sandboxes, aws_url, sm, 50)
    broken = sorted(fleet.keys)[7]
    sm.delete_secret(SecretId=f"fleet/{broken}", ForceDeleteWithoutRecovery=True)
    result = fleet.cli("incident", "--all", "--reason", "INC-4711 leaked CI logs", "--concurrency", "4")
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
    assert "49 completed, 1 failed or held" in result.stdout
    summary = {
        line.split()[0]: line.split()[2]
        for line in result.stdout.splitlines()
        if line.split() and line.split()[0] in fleet.keys
    }
    assert summary[broken] == "failed" and sum(v == "completed" for v in summary.values()) == 49
    for secret in fleet.keys:
        assert fleet.revoked(secret) is (secret != broken), secret
    history = fleet.cli("history", sorted(fleet.keys)[0]).stdout
    assert "trigger=incident" in history and "INC-4711" in history


def test_offboard_picks_exactly_the_secrets_the_person_could_see(
    tmp_path: Path, sandboxes: dict[str, Running], aws_url: str, sm: SecretsManagerClient
) -> None:
    access = {
        0: ["alice@example.com"],
        1: ["team:support"],
        2: ["bob@example.com"],
        3: ["team:billing"],
        4: ["carol@example.com", "team:support"],
    }
    teams = "teams:\n  support: [alice@example.com, dave@example.com]\n  billing: [bob@example.com]\n"
    fleet = build_fleet(tmp_path, sandboxes, aws_url, sm, 6, access=access, teams=teams)
    names = sorted(fleet.keys, key=lambda n: int(n.rsplit("-", 1)[1]))
    listed = fleet.cli("offboard", "alice@example.com", "--reason", "left", "--dry-run").stdout.split()
    assert listed == sorted([names[0], names[1], names[4]])
    result = fleet.cli("offboard", "alice@example.com", "--reason", "left the company")
    assert result.returncode == 0, result.stdout + result.stderr
    for i, name in enumerate(names):
        assert fleet.revoked(name) is (i in (0, 1, 4)), name
    assert "trigger=offboarding" in fleet.cli("history", names[1]).stdout


def test_plan_changes_nothing_and_is_stable(
    tmp_path: Path, sandboxes: dict[str, Running], aws_url: str, sm: SecretsManagerClient
) -> None:
    fleet = build_fleet(tmp_path, sandboxes, aws_url, sm, 4)
    policy = tmp_path / "policies" / "fleet.yaml"
    # a window that opens hours after the secrets fall due (at this time of day, 90 days on): a due
    # date inside the window would start at once (a passed slot), and the test would pass or fail
    # by the hour it runs at
    opens = (datetime.now(UTC).hour + 6) % 24
    window = f"Mon-Sun {opens:02d}:00-{(opens + 3) % 24:02d}:00 UTC"
    policy.write_text(policy.read_text().replace("max_age: 90d,", f"max_age: 90d, jitter: 6h, window: '{window}',"))
    first, second = (json.loads(fleet.cli("plan", "--json").stdout) for _ in range(2))
    starts = [s["next_start"] for s in first["secrets"]]
    assert starts == [s["next_start"] for s in second["secrets"]]
    assert len(set(starts)) == 4  # jitter spreads them
    assert all(s["in_flight"] is False and "max_age" in s["why"] for s in first["secrets"])
    for secret in fleet.keys:
        assert not fleet.revoked(secret)


def _replica(fleet: Fleet, name: str) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        **os.environ,
        "ROTATOR_CONFIG": str(fleet.dir / "rotator.yaml"),
        "ROTATOR_DAEMON__LISTEN": f"127.0.0.1:{port}",
        "ROTATOR_REPLICA_ID": name,
    }
    log = (fleet.dir / f"{name}.log").open("w")
    process = subprocess.Popen([sys.executable, "-m", "rotator", "run"], env=env, stdout=log, stderr=subprocess.STDOUT)
    return process, f"http://127.0.0.1:{port}/readyz"


def test_an_incident_handed_to_two_daemon_replicas_completes_every_rotation_once(
    tmp_path: Path, sandboxes: dict[str, Running], aws_url: str, sm: SecretsManagerClient, own_postgres_url: str
) -> None:
    fleet = build_fleet(tmp_path, sandboxes, aws_url, sm, 16)
    config = fleet.dir / "rotator.yaml"
    config.write_text(
        config.read_text().replace(f"sqlite:///{tmp_path}/state.db", own_postgres_url)
        + "daemon: {tick: 300ms, workers: 3}\n"
    )
    replicas = [_replica(fleet, name) for name in ("one", "two")]
    try:
        deadline = time.monotonic() + 60
        for _, ready in replicas:
            while not _answers(ready):
                assert time.monotonic() < deadline, "a replica did not become ready"
                time.sleep(0.2)
        result = fleet.cli("incident", "--all", "--via-daemons", "--reason", "INC-9 vendor breach", "--json")
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        document = json.loads(result.stdout)
        assert document["summary"]["completed"] == 16
        assert {row["state"] for row in document["secrets"]} == {"completed"}
    finally:
        for process, _ in replicas:
            process.send_signal(signal.SIGTERM)
        codes = [process.wait(timeout=30) for process, _ in replicas]
    assert codes == [0, 0]
    for secret in fleet.keys:
        assert fleet.revoked(secret), secret
    db = StateDB(own_postgres_url)
    for secret in fleet.keys:
        (rotation,) = db.rotations_of(secret)  # one rotation per secret, started by the command
        assert rotation.trigger == "incident" and rotation.started_by.startswith("cli:")
        creates = [e for e in db.events(rotation_id=rotation.id) if e.event == "key.created"]
        assert len(creates) == 1, secret
    workers = {e.actor.rsplit("/", 1)[-1] for e in db.events() if e.actor.startswith("daemon:")}
    assert workers == {"one", "two"}, workers  # both replicas took part


def test_an_incident_handed_to_daemons_that_are_not_running_says_so_and_leaves_them_queued(
    tmp_path: Path, sandboxes: dict[str, Running], aws_url: str, sm: SecretsManagerClient
) -> None:
    fleet = build_fleet(tmp_path, sandboxes, aws_url, sm, 2)
    started = time.monotonic()
    result = fleet.cli("incident", "--all", "--via-daemons", "--reason", "INC-10")
    assert result.returncode == 3, result.stdout + result.stderr
    assert time.monotonic() - started < 60
    assert "is `rotator run` running on this state database?" in result.stderr
    assert "0 completed, 0 failed or held, 0 waiting on a person, 2 still in progress" in result.stdout
    status = fleet.cli("status", "--json")
    assert status.returncode in (0, 3), status.stdout + status.stderr


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.TransportError:
        return False
