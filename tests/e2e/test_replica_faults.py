"""Three `rotator run` replicas on one PostgreSQL database under the faults that broke them
(issue 25): a replica whose connection stalls while it holds the audit chain's lock, replicas
whose clocks are 30 s off, and an incident longer than systemd's WatchdogSec."""

from __future__ import annotations

import glob
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from mypy_boto3_secretsmanager import SecretsManagerClient
from rotator_sandbox.server import Running
from sqlalchemy import text

from rotator.state.db import StateDB
from tests.e2e.test_bulk import Fleet, build_fleet
from tests.e2e.test_daemon import free_port, wait_for
from tests.support.world import World
from tests.tcp_proxy import Proxy

pytestmark = pytest.mark.e2e

TTL = 6.0
"""engine.lease_ttl of these replicas, in seconds."""
TICK = 0.3
PATH = "/v1/personal-access-tokens"


class Replica:
    """`rotator run` as a process, under its own name (ROTATOR_REPLICA_ID: its audit actor)."""

    def __init__(self, fleet: Fleet, name: str, *, config: Path | None = None, **env: str) -> None:
        self.name, self.port = name, free_port()
        full = {
            **os.environ,
            "ROTATOR_CONFIG": str(config or fleet.dir / "rotator.yaml"),
            "ROTATOR_DAEMON__LISTEN": f"127.0.0.1:{self.port}",
            "ROTATOR_REPLICA_ID": name,
            **env,
        }
        self.log = fleet.dir / f"{name}.log"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "rotator", "run"],
            env=full,
            stdout=self.log.open("w"),
            stderr=subprocess.STDOUT,
        )

    def get(self, path: str) -> httpx.Response:
        return httpx.get(f"http://127.0.0.1:{self.port}{path}", timeout=5)

    def ready(self) -> bool:
        try:
            return self.get("/readyz").status_code == 200
        except httpx.TransportError:
            return False

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def replicas() -> Iterator[list[Replica]]:
    started: list[Replica] = []
    yield started
    for r in started:
        r.stop()


def fleet_on(
    tmp_path: Path, sandboxes: dict[str, Running], aws_url: str, sm: SecretsManagerClient, url: str, n: int
) -> Fleet:
    """`n` Brandwave secrets; the replicas' state on PostgreSQL, leases of TTL seconds, quick ticks."""
    fleet = build_fleet(tmp_path, sandboxes, aws_url, sm, n, kinds=("brandwave",))
    config = fleet.dir / "rotator.yaml"
    config.write_text(
        config.read_text()
        .replace(f"sqlite:///{tmp_path}/state.db", url)
        .replace("engine: {", f"engine: {{lease_ttl: {TTL:.0f}s, ")
        + f"daemon: {{tick: {TICK * 1000:.0f}ms, workers: 3}}\n"
    )
    policies = fleet.dir / "policies" / "fleet.yaml"
    policies.write_text(policies.read_text().replace("policies:\n", "policies:\n  soaked: {cutover: {min_soak: 6s}}\n"))
    return fleet


def start_incident(fleet: Fleet, db: StateDB, policy: str = "incident") -> list[str]:
    """Queue a rotation of every secret for the replicas, as `rotator incident --via-daemons` does."""
    return [
        db.create_rotation(secret=s, provider="bw", policy=policy, trigger="incident", reason="INC-25", actor="t").id
        for s in sorted(fleet.keys)
    ]


def states(db: StateDB, ids: list[str]) -> list[str]:
    return [r.state for r in db.rotations(ids)]


def keys_named(fleet: Fleet, rotation_id: str) -> int:
    """Keys the provider made under this rotation's name: more than one is a second writer's create."""
    keys = httpx.get(f"{fleet.sandboxes['brandwave'].base_url}/_sandbox/keys").json()["keys"]
    return sum(1 for k in keys if k["name"] == f"rotator-{rotation_id}")


def test_a_replica_stalled_while_holding_the_audit_chain_stops_no_one_and_acts_on_no_lapsed_lease(
    tmp_path: Path,
    sandboxes: dict[str, Running],
    aws_url: str,
    sm: SecretsManagerClient,
    own_postgres_url: str,
    replicas: list[Replica],
) -> None:
    """The victim's path to PostgreSQL stops moving packets (nothing resets) right after it asks for
    the audit chain's lock, for twice the lease TTL: the others keep completing rotations, take
    over the victim's within a TTL and a tick, and every secret ends with exactly one create."""
    fleet = fleet_on(tmp_path, sandboxes, aws_url, sm, own_postgres_url, 18)
    proxy = Proxy(("127.0.0.1", 5432))
    victim_config = fleet.dir / "victim.yaml"
    victim_config.write_text(
        (fleet.dir / "rotator.yaml").read_text().replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    )
    replicas += [Replica(fleet, "victim", config=victim_config), Replica(fleet, "one"), Replica(fleet, "two")]
    db = StateDB(own_postgres_url)
    try:
        wait_for(lambda: all(r.ready() for r in replicas), timeout=60, what="three ready replicas")
        proxy.stall_after(b"pg_advisory_xact_lock")  # the victim's first audit append
        ids = start_incident(fleet, db)
        wait_for(lambda: proxy.stalled, timeout=60, what="the victim to ask for the audit chain's lock")
        stalled_at = time.monotonic()
        with db.engine.connect() as conn:
            clock = conn.execute(text("SELECT clock_timestamp()")).scalar_one()
            pid = f":{replicas[0].process.pid}:"
            held = conn.execute(
                text("SELECT secret FROM leases WHERE strpos(owner, :pid) > 0 AND secret NOT LIKE 'replica:%'"),
                {"pid": pid},
            ).scalars()
            victims = set(held)
        done_before = states(db, ids).count("completed")
        takeovers: dict[str, float] = {}
        while time.monotonic() < stalled_at + 2 * TTL:
            for e in db.events():
                if e.secret in victims and e.at > clock and not e.actor.endswith("/victim"):
                    takeovers.setdefault(e.secret, (e.at - clock).total_seconds())
            time.sleep(0.25)
        done_during = states(db, ids).count("completed") - done_before
        proxy.resume()
        wait_for(lambda: set(states(db, ids)) == {"completed"}, timeout=120, what="every rotation to complete")
    except AssertionError as exc:
        raise AssertionError("\n".join([str(exc), *(r.log.read_text()[-3000:] for r in replicas)])) from None
    finally:
        proxy.resume()
    assert done_during > 0, "no rotation completed while one replica's connection was stalled"
    assert victims, "the victim held no lease when it stalled"
    assert set(takeovers) == victims, (victims, takeovers)
    assert max(takeovers.values()) <= TTL + TICK + 5, takeovers  # a TTL and a tick, and slack for a busy machine
    assert [keys_named(fleet, rid) for rid in ids] == [1] * len(ids)
    for secret in fleet.keys:
        assert fleet.revoked(secret), secret
    assert db.verify_audit()[1] is None
    assert replicas[0].process.poll() is None, "the stalled replica died"
    proxy.down()


SLEEP_SHIM = """
# Debian 12's libfaketime (0.9.10): with the monotonic clock faked, timed waits on a lock never
# end; with it left alone (FAKETIME_DONT_FAKE_MONOTONIC), Python's time.sleep (an absolute
# clock_nanosleep on it) fails with EINVAL. A timed wait on an event sleeps as long, on the same
# monotonic clock, by a path libfaketime leaves alone. Only the wall clock is skewed, as wanted.
import threading
import time

time.sleep = lambda seconds: threading.Event().wait(max(seconds, 0))
"""


def _sleep_shim(tmp_path: Path) -> Path:
    shim = tmp_path / "faketime-shim"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text(SLEEP_SHIM)
    return shim


def test_replicas_whose_clocks_are_thirty_seconds_apart_never_cut_the_soak(
    tmp_path: Path,
    sandboxes: dict[str, Running],
    aws_url: str,
    sm: SecretsManagerClient,
    own_postgres_url: str,
    replicas: list[Replica],
) -> None:
    """One replica's clock runs 30 s fast, another's 30 s slow (libfaketime), the third's is right:
    whoever promotes and whoever judges the gate, no old key is revoked before min_soak (6 s) has
    passed in real time since its new key became current."""
    found = glob.glob("/usr/lib/*/faketime/libfaketime.so.1")
    assert found, "libfaketime is missing: `make test` installs it (Debian package faketime)"
    fleet = fleet_on(tmp_path, sandboxes, aws_url, sm, own_postgres_url, 9)
    # preloaded into the replica itself (the `faketime` command forks, and a signal to it would
    # not reach the replica)
    skewed = {"LD_PRELOAD": found[0], "FAKETIME_DONT_FAKE_MONOTONIC": "1", "PYTHONPATH": str(_sleep_shim(tmp_path))}
    replicas += [
        Replica(fleet, "fast", FAKETIME="+30s", **skewed),
        Replica(fleet, "slow", FAKETIME="-30s", **skewed),
        Replica(fleet, "true"),
    ]
    db = StateDB(own_postgres_url)
    promoted: dict[str, float] = {}
    done = threading.Event()

    def watch_promotions() -> None:
        """When each secret's AWSCURRENT moved off its first key, on the real clock."""
        while not done.is_set():
            for secret, first in fleet.keys.items():
                if secret not in promoted:
                    got = sm.get_secret_value(SecretId=f"fleet/{secret}", VersionStage="AWSCURRENT")
                    if json.loads(got["SecretString"])["key_id"] != first["id"]:
                        promoted[secret] = time.time()
            time.sleep(0.1)

    watcher = threading.Thread(target=watch_promotions)
    try:
        wait_for(lambda: all(r.ready() for r in replicas), timeout=60, what="three ready replicas")
        watcher.start()
        ids = start_incident(fleet, db, policy="soaked")
        wait_for(lambda: set(states(db, ids)) == {"completed"}, timeout=90, what="every rotation to complete")
    except AssertionError as exc:
        raise AssertionError("\n".join([str(exc), *(r.log.read_text()[-3000:] for r in replicas)])) from None
    finally:
        done.set()
        if watcher.is_alive():
            watcher.join()
    requests = httpx.get(f"{fleet.sandboxes['brandwave'].base_url}/_sandbox/requests").json()["requests"]
    revoked = {r["path"].rsplit("/", 1)[1]: r["at"] for r in requests if r["method"] == "DELETE"}
    soaked = {s: revoked[k["id"]] - promoted[s] for s, k in fleet.keys.items()}
    # the watcher sees a promotion up to one of its rounds late, which can only shorten what it measures
    assert min(soaked.values()) >= 6 - 1, sorted(soaked.items(), key=lambda kv: kv[1])
    actors = {e.actor.rsplit("/", 1)[-1] for e in db.events() if e.event in ("key.promoted", "key.revoked")}
    assert actors & {"fast", "slow"}, actors  # the skewed replicas did take part


def _notify_socket(path: Path) -> tuple[socket.socket, list[tuple[float, str]]]:
    """A NOTIFY_SOCKET as systemd has it: every datagram the daemon sends, with when it came."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    got: list[tuple[float, str]] = []

    def listen() -> None:
        while True:
            try:
                data = sock.recv(4096)
            except OSError:
                return
            got.append((time.monotonic(), data.decode()))

    threading.Thread(target=listen, daemon=True).start()
    return sock, got


def test_a_long_incident_keeps_every_watchdog_fed_and_a_restarted_replica_is_ready_at_once(
    tmp_path: Path,
    sandboxes: dict[str, Running],
    aws_url: str,
    sm: SecretsManagerClient,
    own_postgres_url: str,
    replicas: list[Replica],
) -> None:
    """WatchdogSec=4 s; an incident that keeps three replicas busy for longer: no replica goes
    WatchdogSec/2 without a WATCHDOG=1 and /healthz stays 200. A replica killed and started again
    while every provider call takes a second answers /readyz before it has completed a single
    rotation — ready means the database answers, not that a first tick drained the queue."""
    fleet = fleet_on(tmp_path, sandboxes, aws_url, sm, own_postgres_url, 30)
    sandbox = f"{fleet.sandboxes['brandwave'].base_url}/_sandbox/faults"
    sockets = [_notify_socket(tmp_path / f"notify-{i}") for i in range(3)]
    watchdog = {"WATCHDOG_USEC": "4000000"}
    replicas += [Replica(fleet, f"r{i}", NOTIFY_SOCKET=str(tmp_path / f"notify-{i}"), **watchdog) for i in range(3)]
    db = StateDB(own_postgres_url)
    unhealthy: list[str] = []

    def healthy_meanwhile() -> None:
        for r in replicas[:2]:
            if (answer := r.get("/healthz")).status_code != 200:
                unhealthy.append(f"{r.name}: {answer.text}")

    def completed_by(name: str) -> int:
        return sum(1 for e in db.events() if e.event == "rotation.completed" and e.actor.endswith(f"/{name}"))

    try:
        wait_for(lambda: all(r.ready() for r in replicas), timeout=60, what="three ready replicas")
        httpx.post(sandbox, json={"latency": 0.1})
        since = time.monotonic()
        ids = start_incident(fleet, db)
        wait_for(lambda: states(db, ids).count("completed") >= 5, timeout=60, what="the incident under way")
        httpx.post(sandbox, json={"latency": 1.0})  # a rotation now takes many seconds
        replicas[2].process.kill()
        replicas[2].process.wait()
        replicas[2] = Replica(fleet, "again", **watchdog)
        while not replicas[2].ready():
            assert replicas[2].process.poll() is None, replicas[2].log.read_text()
            healthy_meanwhile()
            time.sleep(0.2)
        completed_before_ready = completed_by("again")
        httpx.post(sandbox, json={"latency": 0.1})
        while set(states(db, ids)) != {"completed"}:
            assert time.monotonic() - since < 180, "the incident did not end"
            healthy_meanwhile()
            time.sleep(0.5)
        busy_until = time.monotonic()
    except AssertionError as exc:
        raise AssertionError("\n".join([str(exc), *(r.log.read_text()[-3000:] for r in replicas)])) from None
    finally:
        httpx.post(sandbox, json={"latency": 0})
    assert busy_until - since > 4, "the incident did not outlast WatchdogSec"
    for sock, got in sockets[:2]:
        pings = [at for at, message in got if "WATCHDOG=1" in message and since <= at <= busy_until]
        gaps = [b - a for a, b in zip([since, *pings], [*pings, busy_until], strict=True)]
        assert max(gaps) <= 2.0, f"a watchdog gap of {max(gaps):.1f} s (WatchdogSec 4 s)"
        sock.close()
    assert not unhealthy, unhealthy
    assert completed_before_ready == 0, "the restarted replica was ready only once it had done work"


def test_a_worker_stuck_in_one_step_past_step_deadline_makes_the_daemon_unhealthy(world: World) -> None:
    """A create that hangs three times longer than engine.step_deadline: /healthz answers 503 and
    says why while it hangs (a long tick alone never does), and 200 again once it is over."""
    from tests.e2e.test_daemon import Daemon, make_due

    world.config.write_text(
        world.config.read_text().replace("timeout: 1s", "timeout: 20s").replace("lease_ttl: 10s", "step_deadline: 2s")
    )
    world.faults(rules=[{"kind": "latency", "method": "POST", "path": PATH, "seconds": 6}])
    make_due(world)
    daemon = Daemon(world)
    seen: list[tuple[int, Any]] = []
    try:
        wait_for(daemon.ready, what="the daemon")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any(code == 503 for code, _ in seen):
            answer = daemon.get("/healthz")
            seen.append((answer.status_code, answer.json()))
            time.sleep(0.2)
        wait_for(lambda: daemon.get("/healthz").status_code == 200, timeout=30, what="healthy again")
    finally:
        daemon.stop()
        world.faults(clear=True)
    stuck = [body for code, body in seen if code == 503]
    assert stuck and "step_deadline" in stuck[0]["reason"], seen[-5:]
