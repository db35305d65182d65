"""`rotator demo`: two whole rotations against local stand-ins, on the embedded defaults (SQLite state).

It starts a moto server (AWS Secrets Manager) and the provider simulators on loopback, seeds a first
key for each secret, writes a rotator.yaml and a policy file into a work directory, then runs the
commands a user would: an API-managed rotation (Brandwave) end to end, and an operator-assisted one
(Blueticks) where the demo plays the person in the dashboard through the simulator's controls.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import boto3
import httpx
from rotator_sandbox.server import Running, serve

from rotator.cli.exit import Exit
from rotator.errors import RotatorError
from rotator.keys import fingerprint

CONFIG = """\
state: {{url: "sqlite:///{workdir}/rotator.db"}}
policies_dir: policies
log: {{level: warning, format: console}}
providers:
  brandwave-demo:
    type: brandwave
    base_url: {brandwave}
    admin_token: {{current: true}}   # Brandwave: the current token creates its successor
    grants: [{{store: aws, secret_id: "demo/brandwave"}}]   # the only place its keys may go
  blueticks-demo:
    type: blueticks
    base_url: {blueticks}
    grants: [{{store: aws, secret_id: "demo/blueticks"}}]
stores:
  aws: {{type: aws, region: us-east-1, endpoint_url: "{aws}"}}
engine: {{verify_interval: 1s, operator_poll: 1s}}
"""

POLICIES = """\
policies:
  demo:
    max_age: 90d
    cutover: {min_soak: 3s}
secrets:
  - name: demo-brandwave
    provider: brandwave-demo
    store: {aws: {secret_id: demo/brandwave}}
    policy: demo
    access: [alice@example.com, team:support]
  - name: demo-blueticks
    provider: blueticks-demo
    store: {aws: {secret_id: demo/blueticks}}
    policy: demo
teams:
  support: [bob@example.com]
"""


def start_moto() -> str:
    """A moto server (AWS Secrets Manager) on loopback, with dummy credentials for boto3; its URL."""
    for variable, default in (
        ("AWS_ACCESS_KEY_ID", "demo"),
        ("AWS_SECRET_ACCESS_KEY", "demo"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
    ):
        os.environ.setdefault(variable, default)
    try:
        from moto.server import ThreadedMotoServer
    except ImportError:
        raise RotatorError("the demo needs moto's server: pip install 'rotator[demo]'") from None
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    return f"http://{host}:{port}"


def _seed(client: Any, sandbox: Running, secret_id: str, *, with_id: bool) -> dict[str, Any]:
    first: dict[str, Any] = httpx.post(
        f"{sandbox.base_url}/_sandbox/keys", json={"name": "app-key", "account": "acct_demo"}
    ).json()
    value = {
        "api_key": first["secret"],
        "key_id": first["id"] if with_id else None,
        "provider": sandbox.name,
        "rotated_at": first["created_at"],
        "rotation_id": None,
    }
    client.create_secret(Name=secret_id, SecretString=json.dumps(value))
    print(f"demo: {secret_id} holds {sandbox.name} key {fingerprint(first['secret'])}")
    return first


def _cli(config: Path, *args: str, stdin: str | None = None) -> int:
    """Run `rotator ARGS` as a person would: its own process, its output on this terminal."""
    sys.stdout.flush()
    done = subprocess.run([sys.executable, "-m", "rotator", "--config", str(config), *args], input=stdin, text=True)
    return done.returncode


def run_demo(workdir: Path | None) -> int:
    """The demo in `workdir`, kept; without one, in a temporary directory removed at the end."""
    if workdir is not None:
        return _demo(workdir.resolve(), keep=True)
    temporary = Path(tempfile.mkdtemp(prefix="rotator-demo-"))
    try:
        return _demo(temporary, keep=False)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)


def _demo(workdir: Path, *, keep: bool) -> int:
    (workdir / "policies").mkdir(parents=True, exist_ok=True)

    aws = start_moto()
    brandwave, blueticks = serve("brandwave"), serve("blueticks")
    print(f"demo: AWS Secrets Manager (moto server) at {aws}")
    print(f"demo: simulators: brandwave {brandwave.api_url}, blueticks {blueticks.api_url}")
    client = boto3.client("secretsmanager", endpoint_url=aws, region_name="us-east-1")
    config = workdir / "rotator.yaml"
    config.write_text(CONFIG.format(workdir=workdir, brandwave=brandwave.api_url, blueticks=blueticks.api_url, aws=aws))
    (workdir / "policies" / "demo.yaml").write_text(POLICIES)
    print(f"demo: config in {config}")

    print("\n== 1. API-managed: Brandwave creates and revokes keys through its API ==")
    _seed(client, brandwave, "demo/brandwave", with_id=True)
    first_code = _cli(config, "rotate", "demo-brandwave", "--reason", "demo")

    print("\n== 2. Operator-assisted: only a person can make Blueticks keys ==")
    old = _seed(client, blueticks, "demo/blueticks", with_id=False)
    code = _cli(config, "rotate", "demo-blueticks", "--reason", "demo")
    if code != Exit.OPERATOR:
        return code or 1
    from rotator.app import App

    rotation = App.load(config).db.active_for("demo-blueticks")
    assert rotation is not None
    made = httpx.post(
        f"{blueticks.base_url}/_sandbox/keys", json={"name": f"rotator-{rotation.id}", "account": "acct_demo"}
    ).json()
    print(f"\ndemo (as the operator): made key rotator-{rotation.id} in the dashboard; handing it over on stdin")
    print(f"$ rotator supply {rotation.id} < new-key")
    _cli(config, "supply", rotation.id, stdin=made["secret"] + "\n")
    httpx.post(f"{blueticks.base_url}/_sandbox/keys/{old['id']}/revoke")
    print(
        "\ndemo (as the operator): revoked the old key in the dashboard; "
        "the next look (a run, or the daemon) sees it refused:"
    )
    print("$ rotator rotate demo-blueticks")
    second_code = _cli(config, "rotate", "demo-blueticks")

    if keep:
        print(f"\ndemo: audit trails: rotator --config {config} history demo-brandwave | demo-blueticks")
    else:
        print("\ndemo: its files are removed; `rotator demo --workdir DIR` keeps them (and the audit trails)")
    brandwave.stop()
    blueticks.stop()
    if first_code == 0 and second_code == 0:
        print("demo: both rotations completed: each secret's AWSCURRENT holds a new key, the old keys are refused")
    return first_code or second_code
