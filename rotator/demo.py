"""`rotator demo`: a whole rotation against local stand-ins, on the embedded defaults (SQLite state).

It starts a moto server (AWS Secrets Manager) and the Brandwave simulator on loopback, seeds a
first token and a secret holding it, writes a rotator.yaml and a policy file into a work
directory, then runs `rotator rotate` exactly as a user would.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import boto3
import httpx

from rotator.errors import RotatorError
from rotator.keys import fingerprint
from rotator.sandbox.server import serve

SECRET, SECRET_ID = "demo-brandwave", "demo/brandwave"

CONFIG = """\
state: {{url: "sqlite:///{workdir}/rotator.db"}}
policies_dir: policies
log: {{level: warning, format: console}}
providers:
  brandwave-demo:
    type: brandwave
    base_url: {brandwave}
    admin_token: {{current: true}}   # Brandwave: the current token creates its successor
stores:
  aws: {{type: aws, region: us-east-1, endpoint_url: "{aws}"}}
engine: {{verify_interval: 1s}}
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
teams:
  support: [bob@example.com]
"""


def _start_moto() -> str:
    try:
        from moto.server import ThreadedMotoServer
    except ImportError:
        raise RotatorError("the demo needs moto's server: pip install 'rotator[demo]'") from None
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    return f"http://{host}:{port}"


def run_demo(workdir: Path | None) -> int:
    from rotator.cli import main

    for variable, default in (
        ("AWS_ACCESS_KEY_ID", "demo"),
        ("AWS_SECRET_ACCESS_KEY", "demo"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
    ):
        os.environ.setdefault(variable, default)
    workdir = (workdir or Path(tempfile.mkdtemp(prefix="rotator-demo-"))).resolve()
    (workdir / "policies").mkdir(parents=True, exist_ok=True)

    aws = _start_moto()
    print(f"demo: AWS Secrets Manager (moto server) at {aws}")
    brandwave = serve("brandwave")
    print(f"demo: Brandwave sandbox at {brandwave.base_url}")

    first = httpx.post(f"{brandwave.base_url}/_sandbox/keys", json={"name": "app-token"}).json()
    value = {
        "api_key": first["secret"],
        "key_id": first["id"],
        "provider": "brandwave",
        "rotated_at": first["created_at"],
        "rotation_id": None,
    }
    client = boto3.client("secretsmanager", endpoint_url=aws, region_name="us-east-1")
    client.create_secret(Name=SECRET_ID, SecretString=json.dumps(value))
    print(f"demo: secret {SECRET_ID} holds token {first['id']} ({fingerprint(first['secret'])})")

    config = workdir / "rotator.yaml"
    config.write_text(CONFIG.format(workdir=workdir, brandwave=brandwave.base_url, aws=aws))
    (workdir / "policies" / "demo.yaml").write_text(POLICIES)
    print(f"demo: config in {config}\n")

    code = main(["--config", str(config), "rotate", SECRET, "--reason", "demo"], standalone_mode=False)

    current = json.loads(client.get_secret_value(SecretId=SECRET_ID, VersionStage="AWSCURRENT")["SecretString"])
    tokens = httpx.get(f"{brandwave.base_url}/_sandbox/keys").json()["keys"]
    live = [t["id"] for t in tokens if not t["revoked"]]
    print(f"\ndemo: AWSCURRENT now holds token {current['key_id']} ({fingerprint(current['api_key'])})")
    print(f"demo: live tokens at Brandwave: {live}; old token {first['id']} revoked: {first['id'] not in live}")
    print(f"demo: audit trail: rotator --config {config} history {SECRET}")
    brandwave.stop()
    return int(code or 0)
