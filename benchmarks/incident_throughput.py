"""Incident throughput: N secrets across Brandwave and Boltly rotated at once, bounded per provider.

Prints figures; asserts nothing. Run: `.venv/bin/python benchmarks/incident_throughput.py`
(BENCH_SECRETS, BENCH_CONCURRENCY to change the size).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import boto3
from moto.server import ThreadedMotoServer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rotator import log
from rotator.app import App
from rotator.bulk import rotate_many
from rotator.sandbox.server import serve_all
from tests.e2e.test_bulk import build_fleet

N = int(os.environ.get("BENCH_SECRETS", "50"))
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "4"))


def main() -> None:
    for name, value in (
        ("AWS_ACCESS_KEY_ID", "x"),
        ("AWS_SECRET_ACCESS_KEY", "x"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
    ):
        os.environ.setdefault(name, value)
    log.configure(level="error")
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    aws = f"http://{host}:{port}"
    sandboxes = {r.name: r for r in serve_all()}
    sm = boto3.client("secretsmanager", endpoint_url=aws, region_name="us-east-1")
    fleet = build_fleet(Path(tempfile.mkdtemp()), sandboxes, aws, sm, N)
    app = App.load(fleet.dir / "rotator.yaml")
    started = time.perf_counter()
    outcomes = rotate_many(
        app,
        sorted(fleet.keys),
        policy="incident",
        trigger="incident",
        reason="bench",
        actor="bench",
        per_provider=CONCURRENCY,
        on_step=lambda _: None,
        on_done=lambda _: None,
    )
    wall = time.perf_counter() - started
    done = sum(o.state == "completed" for o in outcomes)
    print(f"incident: {N} secrets (2 providers, {CONCURRENCY} at a time each): {done} completed in {wall:.1f} s")
    print(f"throughput: {N / wall:.1f} rotations/s; every old key revoked: {all(fleet.revoked(s) for s in fleet.keys)}")
    for r in sandboxes.values():
        r.stop()
    moto.stop()


if __name__ == "__main__":
    main()
