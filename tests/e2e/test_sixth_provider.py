"""A sixth provider from a package of its own, found through its entry point: it rotates a secret
against a small API of its own without any change inside rotator/ — the seam a vendor adapter plugs
into (rotator/plugin/registry.py) — and adds a command of its own (rotator/plugin/actions.py), which
never replaces one of rotator's. Without the package, rotator.yaml naming its type is refused,
naming the installed types."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from mypy_boto3_secretsmanager import SecretsManagerClient

pytestmark = pytest.mark.e2e

PLUGIN = '''\
"""Sixth: API keys over a small JSON API; a key shows its own id at /me."""

from typing import Literal

from rotator.plugin.settings import CredentialSource, ProviderSettings
from rotator.errors import KeyNotFound, KeyNotProven
from rotator.keys import secret
from rotator.plugin.provider import ApiProvider, CreatedKey, KeyInfo, ProbeResult
from rotator.plugin.actions import Action
from rotator.plugin.registry import Context, ProviderType


class SixthSettings(ProviderSettings):
    type: Literal["sixth"]
    base_url: str
    admin_token: CredentialSource = CredentialSource(current=True)

    def endpoint(self):
        return self.base_url


class Sixth(ApiProvider):
    kind = "sixth"

    def __init__(self, http, admin):
        self._http, self._admin = http, admin

    def _auth(self, key=None):
        return {"Authorization": "Bearer " + (key or self._admin()).get_secret_value()}

    def create_key(self, *, name, like):
        made = self._http.request("POST", "/keys", headers=self._auth(), json={"name": name}, idempotent=False)
        body = made.json()
        return CreatedKey(id=body["id"], name=name, secret=secret(body["secret"]))

    def list_keys(self):
        listed = self._http.request("GET", "/keys", headers=self._auth()).json()["keys"]
        return [KeyInfo(id=k["id"], name=k["name"]) for k in listed]

    def revoke_key(self, *, key_id):
        try:
            self._http.request("DELETE", "/keys/" + key_id, headers=self._auth())
        except KeyNotFound:
            return

    def probe(self, *, key):
        self._http.request("GET", "/me", headers=self._auth(key))
        return ProbeResult()

    def prove_key(self, *, key_id, key):
        if self._http.request("GET", "/me", headers=self._auth(key)).json()["id"] != key_id:
            raise KeyNotProven("the stored key is another key than key_id names")
        return "whoami"


def _build(settings, ctx: Context):
    http = ctx.services.http(ctx.instance, settings.base_url, settings.timeout.total_seconds())
    what = "providers." + ctx.instance + ".admin_token"
    return Sixth(http, ctx.credential(settings.admin_token, what))


TYPE = ProviderType(name="sixth", settings=SixthSettings, build=_build)


def _whoami(settings, ctx, ask):
    key = ask("key to look up")
    http = ctx.services.http(ctx.instance, settings.base_url, settings.timeout.total_seconds())
    me = http.request("GET", "/me", headers={"Authorization": "Bearer " + key.get_secret_value()})
    return "that key is " + me.json()["id"]


WHOAMI = Action(
    name="sixth-whoami", provider="sixth", help="Which key of a Sixth INSTANCE a key is (read from stdin).", run=_whoami
)
ROTATE = Action(name="rotate", provider="sixth", help="Not rotator's rotate.", run=lambda *_: "hijacked")
LEAK = Action(
    name="sixth-leak", provider="sixth", help="Says a key.", run=lambda s, c, a: a("key").get_secret_value()
)
'''


CONTRACT = '''\
"""The sixth adapter's own tests: rotator's provider contract, against its vendor's API."""

import os
from pathlib import Path

import httpx
import pytest

from rotator.app import App
from rotator.plugin.testing import ApiProviderContract, IssuedKey

API, ADMIN = os.environ["SIXTH_API"], {"Authorization": "Bearer " + os.environ["SIXTH_ADMIN"]}


class TestSixth(ApiProviderContract):
    unknown_key = "six_" + "0" * 32

    @pytest.fixture
    def provider(self):
        app = App.load(Path(os.environ["ROTATOR_CONFIG"]))
        return app.provider_for(app.policies.secret("six-app"))

    @pytest.fixture
    def issue(self):
        def made():
            body = httpx.post(API + "/keys", headers=ADMIN, json={"name": "made-by-a-person"}).json()
            return IssuedKey(id=body["id"], secret=body["secret"])

        return made

    @pytest.fixture
    def revoke(self):
        return lambda key_id: httpx.delete(API + "/keys/" + key_id, headers=ADMIN).raise_for_status()
'''


class SixthApi(BaseHTTPRequestHandler):
    """The vendor: keys by id; a request authenticates with a live key as bearer."""

    keys: dict[str, dict[str, Any]] = {}

    def log_message(self, *args: Any) -> None:
        pass

    def _caller(self) -> dict[str, Any] | None:
        token = self.headers.get("Authorization", "").removeprefix("Bearer ")
        return next((k for k in self.keys.values() if k["secret"] == token and not k["revoked"]), None)

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        caller = self._caller()
        if caller is None:
            return self._answer(401, {"error": "unauthorized"})
        if self.path == "/me":
            return self._answer(200, {"id": caller["id"]})
        live = [{"id": k["id"], "name": k["name"]} for k in self.keys.values() if not k["revoked"]]
        return self._answer(200, {"keys": live})

    def do_POST(self) -> None:
        if self._caller() is None:
            return self._answer(401, {"error": "unauthorized"})
        name = json.loads(self.rfile.read(int(self.headers["Content-Length"])))["name"]
        key = mint(name)
        return self._answer(201, {"id": key["id"], "secret": key["secret"]})

    def do_DELETE(self) -> None:
        if self._caller() is None:
            return self._answer(401, {"error": "unauthorized"})
        key = self.keys.get(self.path.rsplit("/", 1)[-1])
        if key is None:
            return self._answer(404, {"error": "not found"})
        key["revoked"] = True
        return self._answer(204, {})


def mint(name: str) -> dict[str, Any]:
    key = {"id": f"k_{uuid.uuid4().hex[:8]}", "name": name, "secret": f"six_{secrets.token_hex(16)}", "revoked": False}
    SixthApi.keys[key["id"]] = key
    return key


@pytest.fixture
def sixth_api() -> Iterator[str]:
    SixthApi.keys = {}
    server = ThreadingHTTPServer(("127.0.0.1", 0), SixthApi)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def install_plugin(where: Path) -> Path:
    """The package as pip would leave it: its module and its dist-info with the entry point."""
    where.mkdir()
    (where / "rotator_sixth.py").write_text(PLUGIN)
    info = where / "rotator_sixth-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: rotator-sixth\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[rotator.providers]\nsixth = rotator_sixth:TYPE\n\n"
        "[rotator.actions]\nsixth-whoami = rotator_sixth:WHOAMI\nrotate = rotator_sixth:ROTATE\n"
        "sixth-leak = rotator_sixth:LEAK\nsixth-broken = rotator_sixth_gone:BROKEN\n"
    )
    return where


def test_a_sixth_provider_from_its_own_package_rotates_a_secret(
    tmp_path: Path, sixth_api: str, aws_url: str, sm: SecretsManagerClient
) -> None:
    plugin = install_plugin(tmp_path / "site")
    first = mint("app-key")
    secret_id = f"sixth/app-{uuid.uuid4().hex[:6]}"
    value = {"api_key": first["secret"], "key_id": first["id"], "provider": "sixth", "rotated_at": ""}
    sm.create_secret(Name=secret_id, SecretString=json.dumps(value))
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "main.yaml").write_text(
        "policies:\n  fast: {max_age: 90d, cutover: {min_soak: 0s}}\n"
        f"secrets:\n  - {{name: six-app, provider: six, policy: fast, store: {{aws: {{secret_id: {secret_id}}}}}}}\n"
    )
    config = tmp_path / "rotator.yaml"
    config.write_text(
        f'state: {{url: "sqlite:///{tmp_path}/state.db"}}\npolicies_dir: policies\n'
        f'providers:\n  six: {{type: sixth, base_url: "{sixth_api}", timeout: 2s,'
        ' grants: [{secret_id: "sixth/*"}]}\n'
        f'stores:\n  aws: {{type: aws, region: us-east-1, endpoint_url: "{aws_url}"}}\n'
        "engine: {verify_interval: 200ms, retry_base: 100ms, retry_max: 1s, probe_deadline: 2s}\n"
    )

    def rotator(*args: str, installed: bool = True, given: str = "") -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "ROTATOR_CONFIG": str(config)}
        if installed:
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(plugin), env.get("PYTHONPATH")]))
        return subprocess.run(
            [sys.executable, "-m", "rotator", *args],
            env=env,
            input=given,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    refused = rotator("validate", "--offline", installed=False)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert f"{config}:4:" in refused.stderr and "'sixth'" in refused.stderr and "'brandwave'" in refused.stderr

    # the adapter's own tests: the contract that ships with rotator (rotator/plugin/testing.py)
    (tmp_path / "test_sixth_contract.py").write_text(CONTRACT)
    admin = mint("admin")
    env = {
        **os.environ,
        "ROTATOR_CONFIG": str(config),
        "SIXTH_API": sixth_api,
        "SIXTH_ADMIN": admin["secret"],
        "PYTHONPATH": os.pathsep.join(filter(None, [str(plugin), os.environ.get("PYTHONPATH")])),
    }
    contract = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:xdist",
            "-o",
            "addopts=",
            str(tmp_path / "test_sixth_contract.py"),
        ],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert contract.returncode == 0 and "5 passed" in contract.stdout, contract.stdout[-3000:] + contract.stderr

    rotated = rotator("rotate", "six-app")
    assert rotated.returncode == 0, rotated.stdout + rotated.stderr
    current = json.loads(sm.get_secret_value(SecretId=secret_id, VersionStage="AWSCURRENT")["SecretString"])
    assert current["key_id"] != first["id"] and current["provider"] == "sixth"
    assert SixthApi.keys[first["id"]]["revoked"]  # the old key, proven then revoked and shown dead
    assert (
        not SixthApi.keys[current["key_id"]]["revoked"]
        and SixthApi.keys[current["key_id"]]["secret"] == (current["api_key"])
    )

    # its own command: listed, run on one of its instances with what it asks read from stdin
    listed = rotator("--help")
    assert "sixth-whoami" in listed.stdout and "Which key of a Sixth INSTANCE" in listed.stdout, listed.stdout
    asked = rotator("sixth-whoami", "six", given=current["api_key"] + "\n")
    assert asked.returncode == 0 and f"that key is {current['key_id']}" in asked.stdout, asked.stdout + asked.stderr
    assert current["api_key"] not in asked.stdout + asked.stderr
    elsewhere = rotator("sixth-whoami", "sixx", given="x\n")
    assert elsewhere.returncode == 2 and "acts on sixth provider instances" in elsewhere.stderr
    assert "its instances: six" in elsewhere.stderr
    assert "hijacked" not in rotated.stdout  # `rotate` stayed rotator's own
    leaked = rotator("sixth-leak", "six", given=current["api_key"] + "\n")
    assert leaked.returncode == 0 and current["api_key"] not in leaked.stdout + leaked.stderr, leaked.stdout
    # another package's broken command: listed as such, and a clear refusal, never a traceback
    assert listed.returncode == 0 and "cannot be used" in listed.stdout
    broken = rotator("sixth-broken", "six")
    assert broken.returncode == 2 and "cannot be loaded" in broken.stderr and "Traceback" not in broken.stderr
