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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rotator import log
from rotator.app import App
from rotator.bulk import rotate_many
from rotator.demo import start_moto
from rotator.sandbox.server import serve_all
from tests.e2e.test_bulk import build_fleet

N = int(os.environ.get("BENCH_SECRETS", "50"))
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "4"))


def main() -> None:
    aws = start_moto()
    log.configure(level="error")
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


if __name__ == "__main__":
    main()
