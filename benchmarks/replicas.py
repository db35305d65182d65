"""Replicas (issue 12): an incident over N Brandwave secrets handed to 1 and to 3 `rotator run`
replicas on one PostgreSQL database (`rotator incident --all --via-daemons`), then the same with
3 replicas where the one holding the most leases is SIGKILLed a third of the way through.

Servers as in incident.py (moto and the Brandwave sandbox, each in its own process, the sandbox
answering after BENCH_LATENCY). The AWS write limit is set high (BENCH_WRITES, default 1000/s) so
that the store quota is not the bound. Prints one table and asserts nothing. Columns:
  wall       the incident command, start to exit (the daemons were ready before it started)
  speedup    wall of the one-replica row / this row's wall
  creates    keys created at the provider per secret (the sandbox's count): 1.00 means no second writer
  spread     rotations each replica advanced (audit events' replica ids), one number per replica
  takeover   after the SIGKILL: for each rotation the killed replica held a lease on, the time until
             another replica wrote its next event; max and median (lease_ttl is BENCH_LEASE_TTL)
  wd gap     the longest time any live replica went without a WATCHDOG=1 to its NOTIFY_SOCKET while
             the incident ran (WATCHDOG_USEC as the shipped unit's WatchdogSec=60; systemd restarts
             a daemon silent for 60 s), and how many /healthz answers during the incident were not 200

Run: `.venv/bin/python benchmarks/replicas.py` (make bench runs it). Environment: BENCH_N (1000),
BENCH_WORKERS (daemon.workers per replica, 16), BENCH_LATENCY (0.05), BENCH_LEASE_TTL (10s),
BENCH_PG_ADMIN (postgresql+psycopg://postgres@127.0.0.1:5432/postgres: a database is made per row).

A second table runs an incident of BENCH_QUOTA_N (300) secrets at AWS's real 50 writes/s: one
replica alone, one busy beside an idle one, two busy. Columns: the most writes moto saw in one
second, the median second's and the mean over the incident (the ramp of a replica that has just
seen another included). BENCH_QUOTA_ONLY=1 runs only that table.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from incident import PATH, WRITES, Fleet, Servers, seed

WATCHDOG_SEC = 60
"""The shipped unit's WatchdogSec (systemd/rotator.service)."""
ADMIN = os.environ.get("BENCH_PG_ADMIN", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def database() -> str:
    name = f"rotator_replicas_{uuid.uuid4().hex[:8]}"
    admin = create_engine(ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    admin.dispose()
    return ADMIN.rsplit("/", 1)[0] + f"/{name}"


def drop(url: str) -> None:
    admin = create_engine(ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {url.rsplit('/', 1)[1]} WITH (FORCE)"))
    admin.dispose()


class Replica:
    def __init__(self, fleet: Fleet, name: str, **environment: str) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.name = name
        self.pings: list[float] = []
        notify = fleet.dir / f"{name}.notify"
        self._notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._notify.bind(str(notify))
        threading.Thread(target=self._listen, daemon=True).start()
        env = {
            **os.environ,
            "ROTATOR_CONFIG": str(fleet.dir / "rotator.yaml"),
            "ROTATOR_DAEMON__LISTEN": f"127.0.0.1:{self.port}",
            "ROTATOR_REPLICA_ID": name,
            "NOTIFY_SOCKET": str(notify),
            "WATCHDOG_USEC": str(WATCHDOG_SEC * 1_000_000),
            **environment,
        }
        log = (fleet.dir / f"{name}.log").open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "rotator", "run"], env=env, stdout=log, stderr=subprocess.STDOUT
        )

    def _listen(self) -> None:
        while True:
            try:
                message = self._notify.recv(4096)
            except OSError:
                return
            if b"WATCHDOG=1" in message:
                self.pings.append(time.monotonic())

    def longest_silence(self, start: float, end: float) -> float:
        """The longest stretch of [start, end] without a watchdog ping."""
        pings = [p for p in self.pings if start <= p <= end]
        return max(b - a for a, b in zip([start, *pings], [*pings, end], strict=True))

    def ready(self) -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{self.port}/readyz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def healthy(self) -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=5).status_code == 200
        except httpx.TransportError:
            return False

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()


def creates(srv: Servers) -> int:
    requests = httpx.get(f"{srv.base_url}/_sandbox/requests", timeout=120).json()["requests"]
    return sum(1 for r in requests if r["method"] == "POST" and r["path"] == PATH and r.get("status") in (200, 201))


def spread(url: str) -> list[int]:
    """Rotations each replica advanced: distinct rotation ids per replica id in the audit trail."""
    engine = create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT DISTINCT actor, rotation_id FROM audit_events WHERE actor LIKE 'daemon:%'"))
        counted = Counter(actor.rsplit("/", 1)[-1] for actor, _ in rows)
    engine.dispose()
    return [counted[name] for name in sorted(counted)]


def run_row(srv: Servers, n: int, replicas: int, *, workers: int, ttl: str, kill: bool) -> dict[str, object]:
    url = database()
    fleet = seed(srv, n, writes=int(os.environ.get("BENCH_WRITES", "1000")), state_url=url)
    config = fleet.dir / "rotator.yaml"
    config.write_text(
        config.read_text().replace("engine: {", f"engine: {{lease_ttl: {ttl}, ")
        + f"daemon: {{tick: 1s, workers: {workers}}}\n"
    )
    before = creates(srv)
    daemons = [Replica(fleet, f"r{i}") for i in range(replicas)]
    takeovers: list[float] = []
    killed_at = 0.0
    try:
        deadline = time.monotonic() + 600
        while not all(d.ready() for d in daemons):
            if time.monotonic() > deadline or any(d.process.poll() is not None for d in daemons):
                raise SystemExit(f"a replica did not become ready; see {fleet.dir}/r*.log")
            time.sleep(0.2)
        env = {**os.environ, "ROTATOR_CONFIG": str(config)}
        started = time.monotonic()
        command = subprocess.Popen(
            [sys.executable, "-m", "rotator", "incident", "--all", "--via-daemons", "--reason", "bench", "--json"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        unhealthy = 0
        answered: list[tuple[str, str]] = []  # read as it comes: a thousand rows fill a pipe
        reader = threading.Thread(target=lambda: answered.append(command.communicate(timeout=3600)))
        reader.start()
        if kill:
            takeovers, killed_at = kill_one_midway(url, daemons, n)
        while reader.is_alive():  # the daemons' health while they work
            unhealthy += sum(not d.healthy() for d in daemons if d.process.poll() is None)
            reader.join(1.0)
        ((out, err),) = answered
        wall = time.monotonic() - started
        ended = time.monotonic()
        silence = max(d.longest_silence(started, killed_at if d.process.poll() is not None else ended) for d in daemons)
        summary = json.loads(out)["summary"] if out.strip() else {"error": err[-500:]}
    finally:
        for d in daemons:
            d.stop()
    made = creates(srv) - before
    row: dict[str, object] = {
        "n": n,
        "replicas": replicas,
        "killed": kill,
        "wall": wall,
        "completed": summary.get("completed"),
        "creates": made / n,
        "spread": spread(url),
        "takeovers": takeovers,
        "silence": silence,
        "unhealthy": unhealthy,
    }
    drop(url)
    return row


def kill_one_midway(url: str, daemons: list[Replica], n: int) -> tuple[list[float], float]:
    """SIGKILL the replica holding the most leases once a third of the rotations completed; for each
    rotation it held, the seconds until another replica wrote its next audit event (and when the
    kill was, on the monotonic clock)."""
    engine = create_engine(url)
    with engine.connect() as conn:
        while conn.execute(text("SELECT count(*) FROM rotations WHERE state = 'completed'")).scalar_one() < n / 3:
            time.sleep(0.2)
            conn.commit()
        by_pid = {str(d.process.pid): d for d in daemons}
        leases = conn.execute(text("SELECT secret, owner FROM leases WHERE expires_at > now()")).all()
        held = Counter(owner.split(":")[1] for _, owner in leases if owner.split(":")[1] in by_pid)
        victim = by_pid[held.most_common(1)[0][0]] if held else daemons[0]
        victim.process.kill()
        killed_mono = time.monotonic()
        killed_at = datetime.now(UTC)
        secrets = [s for s, owner in leases if owner.split(":")[1] == str(victim.process.pid)]
        conn.commit()
        waits: list[float] = []
        pending = set(secrets)
        deadline = time.monotonic() + 300
        while pending and time.monotonic() < deadline:
            time.sleep(0.2)
            rows = conn.execute(
                text(
                    "SELECT secret, min(at) FROM audit_events WHERE at > :killed AND actor LIKE 'daemon:%' "
                    "AND actor NOT LIKE :victim AND secret = ANY(:secrets) GROUP BY secret"
                ),
                {"killed": killed_at, "victim": f"%/{victim.name}", "secrets": list(pending)},
            ).all()
            conn.commit()
            for secret, at in rows:
                waits.append((at - killed_at).total_seconds())
                pending.discard(secret)
    engine.dispose()
    return waits, killed_mono


def quota_row(srv: Servers, n: int, *, busy: int, idle: int, workers: int) -> dict[str, float]:
    """An incident at AWS's real 50 writes/s handed to `busy` replicas while `idle` more run beside
    them with nothing to do (their tick an hour away after the first): AWS writes per second,
    counted by moto, over the incident."""
    url = database()
    fleet = seed(srv, n, writes=50, state_url=url)
    config = fleet.dir / "rotator.yaml"
    config.write_text(config.read_text() + f"daemon: {{tick: 1s, workers: {workers}}}\n")
    daemons = [Replica(fleet, f"b{i}") for i in range(busy)]
    daemons += [Replica(fleet, f"i{i}", ROTATOR_DAEMON__TICK="1h") for i in range(idle)]
    try:
        while not all(d.ready() for d in daemons):
            if any(d.process.poll() is not None for d in daemons):
                raise SystemExit(f"a replica did not become ready; see {fleet.dir}/*.log")
            time.sleep(0.2)
        time.sleep(10)  # longer than a replica's raise waits: a daemon alone has been alone a while
        since, _ = srv.aws_calls(10**9)
        started = time.monotonic()
        subprocess.run(
            [sys.executable, "-m", "rotator", "incident", "--all", "--via-daemons", "--reason", "bench", "--json"],
            env={**os.environ, "ROTATOR_CONFIG": str(config)},
            capture_output=True,
            check=False,
            timeout=3600,
        )
        wall = time.monotonic() - started
    finally:
        for d in daemons:
            d.stop()
    _, calls = srv.aws_calls(since)
    writes = [at for at, action in calls if action in WRITES]
    per_second = Counter(int(at) for at in writes)
    seconds = range(min(per_second, default=0), max(per_second, default=0) + 1)
    counts = sorted(per_second.get(second, 0) for second in seconds)
    drop(url)
    return {
        "wall": wall,
        "writes": len(writes),
        "max": max(counts, default=0),
        "median": statistics.median(counts) if counts else 0.0,
        "mean": len(writes) / max(writes[-1] - writes[0], 1e-9) if len(writes) > 1 else 0.0,
    }


def quota_table(srv: Servers, n: int, workers: int) -> None:
    print(f"\nAWS writes at the real 50/s quota, N={n}: busy replicas split it, idle ones leave it to them")
    print(f"{'busy':>4} {'idle':>4} {'wall_s':>7} {'writes':>6} {'w/s max':>7} {'median':>6} {'mean':>6}")
    for busy, idle in ((1, 0), (1, 1), (2, 0)):
        row = quota_row(srv, n, busy=busy, idle=idle, workers=workers)
        print(
            f"{busy:>4} {idle:>4} {row['wall']:>7.1f} {row['writes']:>6.0f} {row['max']:>7.0f} "
            f"{row['median']:>6.1f} {row['mean']:>6.1f}",
            flush=True,
        )


def main() -> None:
    n = int(os.environ.get("BENCH_N", "1000"))
    workers = int(os.environ.get("BENCH_WORKERS", "16"))
    ttl = os.environ.get("BENCH_LEASE_TTL", "10s")
    srv = Servers.start(float(os.environ.get("BENCH_LATENCY", "0.05")))
    print(f"N={n}, daemon.workers={workers} per replica, lease_ttl={ttl}, {os.cpu_count()} cores")
    print(
        f"{'replicas':>8} {'killed':>6} {'done':>5} {'wall_s':>7} {'speedup':>7} {'creates':>7} "
        f"{'takeover max/median s':>22} {'wd gap s':>8} {'!healthz':>8}  spread"
    )
    base = None
    try:
        if os.environ.get("BENCH_QUOTA_ONLY"):
            quota_table(srv, int(os.environ.get("BENCH_QUOTA_N", "300")), workers)
            return
        for replicas, kill in ((1, False), (3, False), (3, True)):
            row = run_row(srv, n, replicas, workers=workers, ttl=ttl, kill=kill)
            wall = float(row["wall"])  # type: ignore[arg-type]
            base = base or wall
            waits = row["takeovers"]
            assert isinstance(waits, list)
            taken = f"{max(waits):.1f}/{statistics.median(waits):.1f} ({len(waits)})" if waits else "-"
            print(
                f"{replicas:>8} {'yes' if kill else 'no':>6} {row['completed']!s:>5} {wall:>7.1f} "
                f"{base / wall:>7.2f} {row['creates']:>7.2f} {taken:>22} {row['silence']:>8.1f} "
                f"{row['unhealthy']!s:>8}  {row['spread']}",
                flush=True,
            )
        quota_table(srv, int(os.environ.get("BENCH_QUOTA_N", "300")), workers)
    finally:
        srv.stop()


if __name__ == "__main__":
    main()
