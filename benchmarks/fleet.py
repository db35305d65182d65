"""A fleet of 10,000 and 100,000 secrets on one daemon (issue 14). Prints figures; asserts nothing.

For each size: policy files (one Brandwave secret each, a quarterly policy whose window is closed
now) and a "warm" state database (one rotation per secret completed 10 days ago: nothing is due).
  validate     `rotator validate --offline` as a process: wall time and peak RSS
  plan         `rotator plan --json` as a process
  ready        `rotator run` as a process: start until /readyz answers 200
  tick p50/99  the daemon's idle ticks, from its own step log (`tick.done` lines)
  idle cpu     the daemon's user+sys CPU over BENCH_IDLE seconds (default 60) of nothing due, in %
  rss          the daemon's resident memory after that minute, and again after a scrape
  scrape       GET /metrics: wall time and size
Then a cold start (BENCH_COLD secrets, default 10,000, in a moto server of its own; no rotation in
the state database, so every age must be read from the store): AWS calls until discovery is done
and the time to get there, counted at moto.

    BENCH_SIZES=10000,100000 BENCH_IDLE=60 BENCH_COLD=10000 python benchmarks/fleet.py
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from sqlalchemy import insert

from rotator.state.clock import utcnow
from rotator.state.db import StateDB
from rotator.state.schema import Rotation

SIZES = [int(n) for n in os.environ.get("BENCH_SIZES", "10000,100000").split(",")]
IDLE = float(os.environ.get("BENCH_IDLE", "60"))
COLD = int(os.environ.get("BENCH_COLD", "10000"))

CONFIG = """\
state: {{url: "sqlite:///{dir}/state.db"}}
policies_dir: policies
log: {{level: debug, format: json}}
providers:
  bw:
    type: brandwave
    base_url: http://127.0.0.1:9
    admin_token: {{current: true}}
    grants: [{{store: aws, secret_id: "fleet/*"}}]
stores:
  aws: {{type: aws, region: us-east-1, endpoint_url: "{aws}"}}
daemon: {{listen: "127.0.0.1:{port}", tick: 5s}}
"""


def closed_window() -> str:
    opens = (utcnow() + timedelta(hours=12)).hour
    return f"Mon-Sun {opens:02d}:00-{(opens + 1) % 24:02d}:00 UTC" if opens != 23 else "Mon-Sun 22:00-23:00 UTC"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_fleet(directory: Path, n: int, aws: str = "http://127.0.0.1:9") -> int:
    port = free_port()
    (directory / "rotator.yaml").write_text(CONFIG.format(dir=directory, aws=aws, port=port))
    (directory / "policies").mkdir()
    lines = ["policies:", "  quarterly:", "    max_age: 90d", f'    window: "{closed_window()}"', "    jitter: 30m"]
    lines.append("secrets:")
    for i in range(n):
        lines += [
            f"  - name: app-{i:06d}",
            "    provider: bw",
            f"    store: {{aws: {{secret_id: fleet/app-{i:06d}}}}}",
            "    policy: quarterly",
            "    access: [alice@example.com]",
        ]
    (directory / "policies" / "fleet.yaml").write_text("\n".join(lines) + "\n")
    return port


def seed_completed(directory: Path, n: int) -> None:
    db = StateDB(f"sqlite:///{directory}/state.db")
    finished = utcnow() - timedelta(days=10)
    rows = [
        {
            "id": str(uuid.uuid4()),
            "secret": f"app-{i:06d}",
            "provider": "bw",
            "policy": "quarterly",
            "state": "completed",
            "trigger": "policy",
            "reason": "",
            "started_by": "bench",
            "created_at": finished,
            "updated_at": finished,
            "next_attempt_at": finished,
            "waiting_for": "",
            "finished_at": finished,
        }
        for i in range(n)
    ]
    with db.session() as s:
        for start in range(0, n, 10_000):
            s.execute(insert(Rotation), rows[start : start + 10_000])
    db.close()


def rotator(directory: Path, *args: str) -> tuple[float, float]:
    """Run `rotator ARGS`: (wall seconds, peak RSS MB of that process)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "rotator", "--config", str(directory / "rotator.yaml"), *args],
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - started
    if done.returncode not in (0, 1):
        raise SystemExit(f"rotator {' '.join(args)} failed: {done.stderr[-2000:]}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return wall, max(peak, before) / 1024


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def start_daemon(directory: Path, port: int) -> tuple[subprocess.Popen[bytes], float, Path]:
    """`rotator run`; the seconds until /readyz says 200."""
    log = directory / "daemon.log"
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "rotator", "--config", str(directory / "rotator.yaml"), "run"],
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5).status_code == 200:
                return process, time.perf_counter() - started, log
        except httpx.TransportError:
            pass
        if process.poll() is not None:
            raise SystemExit(f"the daemon exited: {log.read_text()[-2000:]}")
        time.sleep(0.05)


def tick_times(log: Path) -> list[float]:
    found = []
    for line in log.read_text().splitlines():
        if '"tick.done"' in line:
            found.append(float(json.loads(line)["ms"]))
    return found


def warm(n: int) -> dict[str, str]:
    directory = Path(tempfile.mkdtemp(prefix=f"fleet-{n}-"))
    port = write_fleet(directory, n)
    seed_completed(directory, n)
    size = (directory / "policies" / "fleet.yaml").stat().st_size
    validate, validate_rss = rotator(directory, "validate", "--offline")
    plan, _ = rotator(directory, "plan", "--json")
    process, ready, log = start_daemon(directory, port)
    try:
        time.sleep(6)  # the first tick (plans every secret) is behind us
        cpu_before, at = cpu_seconds(process.pid), time.perf_counter()
        time.sleep(IDLE)
        idle_cpu = 100 * (cpu_seconds(process.pid) - cpu_before) / (time.perf_counter() - at)
        rss = rss_mb(process.pid)
        started = time.perf_counter()
        scraped = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=120)
        scrape = time.perf_counter() - started
        time.sleep(1)
        rss_scraped = rss_mb(process.pid)
        ticks = sorted(tick_times(log)[1:])  # the first plans the fleet
    finally:
        process.terminate()
        process.wait(timeout=60)
    p50 = ticks[len(ticks) // 2] if ticks else float("nan")
    p99 = ticks[min(len(ticks) - 1, int(len(ticks) * 0.99))] if ticks else float("nan")
    return {
        "secrets": f"{n:,}",
        "policy MB": f"{size / 1e6:.1f}",
        "validate s": f"{validate:.1f}",
        "validate MB": f"{validate_rss:.0f}",
        "plan s": f"{plan:.1f}",
        "ready s": f"{ready:.1f}",
        "tick p50/p99 ms": f"{p50:.0f}/{p99:.0f}",
        "idle cpu %": f"{idle_cpu:.1f}",
        "rss MB": f"{rss:.0f}",
        "rss scraped MB": f"{rss_scraped:.0f}",
        "scrape s": f"{scrape:.2f}",
        "scrape MB": f"{len(scraped.content) / 1e6:.1f}",
    }


def cold(n: int) -> dict[str, str]:
    import boto3
    from incident import Servers

    servers = Servers.start(latency=0.0)
    try:
        directory = Path(tempfile.mkdtemp(prefix=f"fleet-cold-{n}-"))
        port = write_fleet(directory, n, aws=servers.moto_url)
        sm = boto3.client(
            "secretsmanager",
            endpoint_url=servers.moto_url,
            region_name="us-east-1",
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
        )
        fresh = utcnow().isoformat()
        for i in range(n):
            value = {"api_key": f"bw_{i:06d}", "key_id": f"k{i}", "rotated_at": fresh}
            sm.create_secret(Name=f"fleet/app-{i:06d}", SecretString=json.dumps(value))
        since, _ = servers.aws_calls(0)
        process, ready, _ = start_daemon(directory, port)
        try:
            while True:
                text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=60).text
                left = next(
                    float(line.split()[-1])
                    for line in text.splitlines()
                    if line.startswith("rotator_discovery_pending ")
                )
                if left == 0:
                    break
                time.sleep(0.2)
            total, calls = servers.aws_calls(since)
            discovered = max(at for at, _ in calls) - min(at for at, _ in calls) if calls else 0.0
        finally:
            process.terminate()
            process.wait(timeout=60)
        kinds: dict[str, int] = {}
        for _, action in calls:
            kinds[action] = kinds.get(action, 0) + 1
        return {
            "secrets": f"{n:,}",
            "ready s": f"{ready:.1f}",
            "AWS calls": f"{total - since:,}",
            "by action": ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())),
            "discovery s": f"{discovered:.1f}",
        }
    finally:
        servers.stop()


def table(rows: list[dict[str, str]]) -> None:
    if not rows:
        return
    heads = list(rows[0])
    widths = [max(len(h), *(len(r[h]) for r in rows)) for h in heads]
    print("  ".join(h.rjust(w) for h, w in zip(heads, widths, strict=True)))
    for row in rows:
        print("  ".join(row[h].rjust(w) for h, w in zip(heads, widths, strict=True)))


def main() -> None:
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    print(f"warm fleet (nothing due), idle {IDLE:.0f} s, tick 5 s:")
    table([warm(n) for n in SIZES])
    if COLD:
        print(f"\ncold start ({COLD:,} secrets in moto, none rotated here):")
        table([cold(COLD)])


if __name__ == "__main__":
    main()
