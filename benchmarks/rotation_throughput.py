"""Rotation throughput and step latency against local stand-ins (moto server + Brandwave sandbox).

Prints figures; asserts nothing. `make bench` runs it. N secrets are rotated one after another
in-process (min_soak 0s), so the figure is the engine's own overhead plus loopback HTTP.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import boto3

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rotator import log
from rotator.demo import start_moto
from rotator.sandbox.server import serve
from tests.world import World

N = int(os.environ.get("BENCH_ROTATIONS", "20"))


def main() -> None:
    aws = start_moto()
    log.configure(level="error")
    sandbox = serve("brandwave")
    sm = boto3.client("secretsmanager", endpoint_url=aws, region_name="us-east-1")
    durations = []
    for _ in range(N):
        world = World.create(Path(tempfile.mkdtemp()), aws=aws, brandwave=sandbox.base_url, sm=sm, log_level="error")
        app = world.app()
        rotation = app.db.create_rotation(
            secret=world.name, provider="bw", policy="fast", trigger="bench", reason="", actor="bench"
        )
        started = time.perf_counter()
        final = app.runner("bench").run(rotation.id, follow=True)
        durations.append(time.perf_counter() - started)
        assert final.state == "completed", final.state
    total = sum(durations)
    print(f"rotations: {N}, all completed")
    print(
        f"per rotation: median {statistics.median(durations) * 1000:.0f} ms, "
        f"p90 {sorted(durations)[int(N * 0.9) - 1] * 1000:.0f} ms, max {max(durations) * 1000:.0f} ms"
    )
    print(f"throughput (sequential): {N / total:.1f} rotations/s")
    sandbox.stop()


if __name__ == "__main__":
    main()
