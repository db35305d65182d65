"""Incident fan-out (issue 13): `rotator incident --all` as a process over N Brandwave secrets held in
AWS Secrets Manager (a moto server), the Brandwave sandbox answering each request after a set latency.

Prints one table and asserts nothing (timing goals live here, never in tests). Columns:
  wall       the incident command, start to exit
  bound      max(round-trip bound, quota bound): ceil(N/C) x (provider calls x provider RTT + store
             calls x store RTT), both RTTs measured in this run; N x writes per rotation / write limit
  x seq      a sequential loop making the same calls, timed over a sample and scaled to N
  pool       a thread pool of C making only the essential calls (no state, no checks): its wall
  cpu ms     the command's user+sys CPU / N;  aws, http: calls per rotation at moto / the sandbox
  w/s max    the most AWS write calls (PutSecretValue, UpdateSecretVersionStage) moto saw in one second
  tx         state-database transactions per rotation (PostgreSQL rows: counted by the server;
             SQLite rows: counted in-process over a sample of the same code path)

Run: `make bench`, or `.venv/bin/python benchmarks/incident.py`. Environment: BENCH_N="100,1000",
BENCH_C="4,16,64", BENCH_LATENCY=0.05 (seconds the sandbox waits per request), BENCH_WRITES=1000 (the
AWS write limit of the throughput rows: high, so that the quota is not what is measured; one more
row runs at AWS's real 50 per second), BENCH_PG=postgresql+psycopg://… (adds a PostgreSQL row).
"""

from __future__ import annotations

import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import httpx
from moto.moto_server.threaded_moto_server import ThreadedMotoServer
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import make_server

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rotator_sandbox.server import serve

WRITES = ("PutSecretValue", "UpdateSecretVersionStage", "UpdateSecret")
PATH = "/v1/personal-access-tokens"
for _name, _value in (
    ("AWS_ACCESS_KEY_ID", "bench"),
    ("AWS_SECRET_ACCESS_KEY", "bench"),
    ("AWS_DEFAULT_REGION", "us-east-1"),
):
    os.environ.setdefault(_name, _value)


class QuietHandler(MotoRequestHandler):
    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass


class CountingMoto(ThreadedMotoServer):
    """moto's threaded server, noting each call's action and (wall) time as it arrives; GET
    /_bench/calls?since=K answers the calls from the K-th on."""

    def __init__(self) -> None:
        super().__init__(ip_address="127.0.0.1", port=0, verbose=False)
        self.calls: list[tuple[float, str]] = []

    def _server_entry(self) -> None:
        app = DomainDispatcherApplication(create_backend_app)

        def counting(environ: dict[str, Any], start_response: Any) -> Any:
            if environ.get("PATH_INFO") == "/_bench/calls":
                since = int(environ.get("QUERY_STRING", "since=0").partition("=")[2] or 0)
                body = json.dumps({"total": len(self.calls), "calls": self.calls[since:]}).encode()
                start_response("200 OK", [("Content-Type", "application/json")])
                return [body]
            self.calls.append((time.time(), environ.get("HTTP_X_AMZ_TARGET", "").rpartition(".")[2]))
            return app(environ, start_response)

        self._server = make_server(self._ip_address, self._port, counting, True, request_handler=QuietHandler)
        self._server_ready_event.set()
        self._server.serve_forever()

    @property
    def url(self) -> str:
        host, port = self.get_host_and_port()
        return f"http://{host}:{port}"


@dataclass
class Servers:
    """moto and the Brandwave sandbox, each in a process of its own: on two cores, servers sharing
    the harness's interpreter (and its lock) would be what the benchmark measures."""

    moto_url: str
    base_url: str
    api_url: str
    processes: list[subprocess.Popen[str]]

    @classmethod
    def start(cls, latency: float) -> Servers:
        found: dict[str, str] = {}
        processes = []
        for what in ("moto", "brandwave"):
            process = subprocess.Popen(
                [sys.executable, __file__, "--serve", what], stdout=subprocess.PIPE, text=True, cwd=Path.cwd()
            )
            found.update(json.loads(process.stdout.readline()))  # type: ignore[union-attr]
            processes.append(process)
        servers = cls(found["moto"], found["base"], found["api"], processes)
        httpx.post(f"{servers.base_url}/_sandbox/faults", json={"latency": latency}).raise_for_status()
        return servers

    def aws_calls(self, since: int) -> tuple[int, list[tuple[float, str]]]:
        got = httpx.get(f"{self.moto_url}/_bench/calls", params={"since": since}, timeout=60).json()
        return int(got["total"]), [(float(at), str(action)) for at, action in got["calls"]]

    def http_requests(self) -> int:
        return len(httpx.get(f"{self.base_url}/_sandbox/requests", timeout=60).json()["requests"])

    def stop(self) -> None:
        for process in self.processes:
            process.kill()


def serve_forever(what: str) -> None:
    if what == "moto":
        moto = CountingMoto()
        moto.start()
        print(json.dumps({"moto": moto.url}), flush=True)
    else:
        bw = serve("brandwave")
        print(json.dumps({"base": bw.base_url, "api": bw.api_url}), flush=True)
    while True:
        time.sleep(3600)


@dataclass
class Fleet:
    dir: Path
    names: list[str]
    secret_ids: list[str]
    keys: list[dict[str, Any]]


def seed(srv: Servers, n: int, *, writes: int, state_url: str | None = None) -> Fleet:
    tag = uuid.uuid4().hex[:6]
    root = Path(tempfile.mkdtemp(prefix=f"incident-{tag}-"))
    sm = boto3.client("secretsmanager", endpoint_url=srv.moto_url, region_name="us-east-1")
    names = [f"s{tag}{i:05d}" for i in range(n)]
    secret_ids = [f"inc/{name}" for name in names]

    def mint(i: int) -> dict[str, Any]:
        body = {"name": f"app-{names[i]}", "account": names[i]}  # a user each: a list shows one user's keys
        key: dict[str, Any] = httpx.post(f"{srv.base_url}/_sandbox/keys", json=body).json()
        return key

    with ThreadPoolExecutor(8) as pool:
        keys = list(pool.map(mint, range(n)))
    for key, secret_id in zip(keys, secret_ids, strict=True):  # moto's CreateSecret fails now and then when concurrent
        value = {
            "api_key": key["secret"],
            "key_id": key["id"],
            "provider": "brandwave",
            "rotated_at": key["created_at"],
        }
        sm.create_secret(Name=secret_id, SecretString=json.dumps(value))
    (root / "policies").mkdir()
    lines = [
        f"  - {{name: {name}, provider: bw, policy: quarterly, store: {{aws: {{secret_id: {sid}}}}}}}"
        for name, sid in zip(names, secret_ids, strict=True)
    ]
    (root / "policies" / "fleet.yaml").write_text(
        "policies:\n  quarterly: {max_age: 90d}\nsecrets:\n" + "\n".join(lines) + "\n"
    )
    url = state_url or f"sqlite:///{root}/state.db"
    # an incident runs where rotator is installed: its state database exists (making one runs the
    # migrations, ~0.3 s of CPU that no incident pays)
    from rotator.state.db import StateDB

    StateDB(url).close()
    (root / "rotator.yaml").write_text(f"""\
state: {{url: "{url}"}}
log: {{level: error}}
providers:
  bw: {{type: brandwave, base_url: "{srv.api_url}", admin_token: {{current: true}}, timeout: 30s,
       grants: [{{secret_id: "inc/*"}}]}}
stores:
  aws: {{type: aws, region: us-east-1, endpoint_url: "{srv.moto_url}", writes_per_second: {writes}}}
engine: {{verify_interval: 200ms, retry_base: 100ms, retry_max: 1s}}
""")
    return Fleet(root, names, secret_ids, keys)


@dataclass
class Run:
    wall: float
    cpu: float
    rss_mb: float
    completed: int
    aws: Counter[str]
    writes_max: int
    http: int


def incident(srv: Servers, fleet: Fleet, concurrency: int) -> Run:
    aws_before, _ = srv.aws_calls(10**9)
    http_before = srv.http_requests()
    env = {**os.environ, "ROTATOR_CONFIG": str(fleet.dir / "rotator.yaml")}
    out = fleet.dir / "out.json"
    command = [sys.executable, "-m", "rotator", "incident", "--all", "--reason", "bench"]
    started = time.monotonic()
    with out.open("w") as sink:
        process = subprocess.Popen(
            [*command, "--concurrency", str(concurrency), "--json"], env=env, stdout=sink, stderr=subprocess.DEVNULL
        )
        _, _, usage = os.wait4(process.pid, 0)
    wall = time.monotonic() - started
    try:
        outcomes = json.loads(out.read_text()).get("secrets", [])
    except ValueError:
        outcomes = []
    _, calls = srv.aws_calls(aws_before)
    per_second = Counter(int(at) for at, action in calls if action in WRITES)
    return Run(
        wall=wall,
        cpu=usage.ru_utime + usage.ru_stime,
        rss_mb=usage.ru_maxrss / 1024,
        completed=sum(1 for o in outcomes if o.get("state") == "completed"),
        aws=Counter(action for _, action in calls),
        writes_max=max(per_second.values(), default=0),
        http=srv.http_requests() - http_before,
    )


def essential(sm: Any, http: httpx.Client, secret_id: str) -> None:
    """The calls rotator makes for one rotation, with nothing around them: read, prove, create,
    stage, probe, promote, tag, revoke, verify."""
    current = sm.get_secret_value(SecretId=secret_id, VersionStage="AWSCURRENT")
    value = json.loads(current["SecretString"])
    old = {"Authorization": f"Bearer {value['api_key']}"}
    http.get(PATH, headers=old, params={"page": 1, "pageSize": 100})
    http.get(PATH, headers=old, params={"page": 1, "pageSize": 1})
    http.get(PATH, headers=old, params={"page": 1, "pageSize": 100})
    created = http.post(PATH, headers=old, json={"name": f"rotator-{uuid.uuid4()}", "expiresAt": None}).json()["data"]
    token = str(uuid.uuid4())
    new_value = {**value, "api_key": created["token"], "key_id": created["id"]}
    sm.put_secret_value(
        SecretId=secret_id, ClientRequestToken=token, SecretString=json.dumps(new_value), VersionStages=["AWSPENDING"]
    )
    new = {"Authorization": f"Bearer {created['token']}"}
    http.get(PATH, headers=new, params={"page": 1, "pageSize": 1}).raise_for_status()
    sm.update_secret_version_stage(
        SecretId=secret_id, VersionStage="AWSCURRENT", MoveToVersionId=token, RemoveFromVersionId=current["VersionId"]
    )
    sm.update_secret_version_stage(SecretId=secret_id, VersionStage="AWSPENDING", RemoveFromVersionId=token)
    sm.tag_resource(SecretId=secret_id, Tags=[{"Key": "rotator:rotation-id", "Value": token}])
    http.delete(f"{PATH}/{value['key_id']}", headers=new)
    assert http.get(PATH, headers=old, params={"page": 1, "pageSize": 1}).status_code == 401


def clients(srv: Servers, size: int) -> tuple[Any, httpx.Client]:
    from botocore.config import Config

    sm = boto3.client(
        "secretsmanager", endpoint_url=srv.moto_url, region_name="us-east-1", config=Config(max_pool_connections=size)
    )
    return sm, httpx.Client(
        base_url=srv.api_url.removesuffix("/v1"), limits=httpx.Limits(max_keepalive_connections=size), timeout=30
    )


def sequential_seconds_per_rotation(srv: Servers, sample: int) -> float:
    fleet = seed(srv, sample, writes=1000)
    sm, http = clients(srv, 1)
    started = time.monotonic()
    for secret_id in fleet.secret_ids:
        essential(sm, http, secret_id)
    return (time.monotonic() - started) / sample


def pool_wall(srv: Servers, n: int, concurrency: int) -> float:
    fleet = seed(srv, n, writes=1000)
    sm, http = clients(srv, concurrency)
    started = time.monotonic()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(lambda s: essential(sm, http, s), fleet.secret_ids))
    return time.monotonic() - started


def rtts(srv: Servers) -> tuple[float, float]:
    """(provider RTT, store RTT) in seconds: the median of 21 plain calls each."""
    fleet = seed(srv, 1, writes=1000)
    sm, http = clients(srv, 1)
    headers = {"Authorization": f"Bearer {fleet.keys[0]['secret']}"}

    def timed(call: Any) -> float:
        samples = []
        for _ in range(21):
            started = time.perf_counter()
            call()
            samples.append(time.perf_counter() - started)
        return sorted(samples)[10]

    provider = timed(lambda: http.get(PATH, headers=headers, params={"page": 1, "pageSize": 1}))
    store = timed(lambda: sm.get_secret_value(SecretId=fleet.secret_ids[0], VersionStage="AWSCURRENT"))
    return provider, store


def sqlite_transactions(srv: Servers, sample: int) -> float:
    """State transactions per rotation of `rotate_many` (the incident command's engine), in-process."""
    from sqlalchemy import event

    from rotator import log

    log.configure(level="error")
    from rotator.app import App
    from rotator.operations.bulk import rotate_many

    fleet = seed(srv, sample, writes=1000)
    app = App.load(fleet.dir / "rotator.yaml")
    commits = [0]
    lock = threading.Lock()

    def committed(_: Any) -> None:
        with lock:
            commits[0] += 1

    event.listen(app.db.engine, "commit", committed)
    before = commits[0]
    rotate_many(
        app,
        fleet.names,
        policy="incident",
        trigger="incident",
        reason="bench",
        actor="bench",
        per_provider=4,
        on_step=lambda _: None,
        on_done=lambda _: None,
    )
    app.close()
    return (commits[0] - before) / sample


def pg_commits(url: str) -> int:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.connect() as conn:
        time.sleep(1.0)  # the statistics collector reports with a delay
        found = conn.execute(
            text("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")
        ).scalar()
    engine.dispose()
    return int(found or 0)


def main() -> None:
    ns = [int(x) for x in os.environ.get("BENCH_N", "100,1000").split(",")]
    cs = [int(x) for x in os.environ.get("BENCH_C", "4,16,64").split(",")]
    latency = float(os.environ.get("BENCH_LATENCY", "0.05"))
    writes = int(os.environ.get("BENCH_WRITES", "1000"))
    pg = os.environ.get("BENCH_PG")
    srv = Servers.start(latency)

    provider_rtt, store_rtt = rtts(srv)
    seq = sequential_seconds_per_rotation(srv, int(os.environ.get("BENCH_SEQUENTIAL_SAMPLE", "40")))
    tx_sqlite = sqlite_transactions(srv, 20)
    print(f"provider RTT {provider_rtt * 1000:.1f} ms (sandbox latency {latency * 1000:.0f} ms)", end=", ")
    print(f"store RTT {store_rtt * 1000:.1f} ms; sequential loop: {seq:.3f} s per rotation")
    print(f"SQLite: {tx_sqlite:.1f} state transactions per rotation (in-process sample of 20)")
    print()
    columns = "N C limit db done wall_s bound_s ratio x_seq pool_s cpu_ms aws http w/s_max tx rss_MB"
    widths = (5, 3, 5, 6, 5, 7, 7, 5, 6, 6, 6, 4, 4, 7, 5, 6)
    header = " ".join(f"{name:>{width}}" for name, width in zip(columns.split(), widths, strict=True))
    print(header)
    rows: list[tuple[int, int, int, str | None]] = [(n, c, writes, None) for n in ns for c in cs]
    rows.append((max(ns), max(cs), 50, None))
    if pg:
        rows.append((max(ns), max(cs), writes, pg))
    for n, c, limit, state_url in rows:
        if state_url:
            _reset_pg(state_url)
        fleet = seed(srv, n, writes=limit, state_url=state_url)
        commits_before = pg_commits(state_url) if state_url else 0
        run = incident(srv, fleet, c)
        tx = (pg_commits(state_url) - commits_before) / n if state_url else tx_sqlite
        aws_per = sum(run.aws.values()) / n
        writes_per = sum(run.aws[a] for a in WRITES) / n
        http_per = run.http / n
        round_trip = math.ceil(n / c) * (http_per * provider_rtt + aws_per * store_rtt)
        quota = n * writes_per / limit
        bound = max(round_trip, quota)
        throughput_row = limit == writes and not state_url
        pool = pool_wall(srv, n, c) if throughput_row else float("nan")
        cells = (
            n,
            c,
            limit,
            "pg" if state_url else "sqlite",
            run.completed,
            f"{run.wall:.1f}",
            f"{bound:.1f}",
            f"{run.wall / bound:.2f}",
            f"{seq * n / run.wall:.1f}",
            f"{pool:.1f}",
            f"{run.cpu / n * 1000:.1f}",
            f"{aws_per:.1f}",
            f"{http_per:.1f}",
            run.writes_max,
            f"{tx:.1f}",
            f"{run.rss_mb:.0f}",
        )
        print(" ".join(f"{cell:>{width}}" for cell, width in zip(cells, widths, strict=True)), flush=True)
    srv.stop()


def _reset_pg(url: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    engine.dispose()


if __name__ == "__main__":
    resource.setrlimit(resource.RLIMIT_NOFILE, (4096, 4096))
    if sys.argv[1:2] == ["--serve"]:
        serve_forever(sys.argv[2])
    else:
        main()
