"""Real servers, started once per session: a moto server (AWS Secrets Manager) and the sandboxes."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import boto3
import httpx
import pytest
from moto.server import ThreadedMotoServer
from mypy_boto3_secretsmanager import SecretsManagerClient

from rotator import log
from rotator.sandbox.server import Running, serve
from tests.world import World

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
def brandwave_server() -> Iterator[Running]:
    running = serve("brandwave")
    yield running
    running.stop()


@pytest.fixture
def brandwave(brandwave_server: Running) -> Iterator[str]:
    """The sandbox's base URL; faults injected by a test are cleared after it."""
    yield brandwave_server.base_url
    httpx.post(f"{brandwave_server.base_url}/_sandbox/faults", json={"clear": True})
    httpx.post(f"{brandwave_server.base_url}/_sandbox/refuse", json={"refuse_new_tokens": False})


@pytest.fixture
def world(tmp_path: Path, aws_url: str, brandwave: str, sm: SecretsManagerClient) -> World:
    return World.create(tmp_path, aws=aws_url, brandwave=brandwave, sm=sm)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A throwaway database on the machine's PostgreSQL (TESTBED.md); dropped at the end."""
    import uuid

    import sqlalchemy

    base = os.environ.get("ROTATOR_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    admin = sqlalchemy.create_engine(base, isolation_level="AUTOCOMMIT")
    name = f"rotator_test_{uuid.uuid4().hex[:8]}"
    try:
        with admin.connect() as conn:
            conn.execute(sqlalchemy.text(f"CREATE DATABASE {name}"))
    except sqlalchemy.exc.OperationalError as exc:
        pytest.skip(f"no PostgreSQL at {base}: {exc.orig}")
    yield base.rsplit("/", 1)[0] + f"/{name}"
    with admin.connect() as conn:
        conn.execute(sqlalchemy.text(f"DROP DATABASE {name} WITH (FORCE)"))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def state_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/state.db"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture(autouse=True)
def _quiet_logs() -> None:
    log.configure(level="warning")
