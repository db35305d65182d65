"""What one rotation's pieces cost in CPU, each timed alone in one thread: where incident.py's
"cpu ms" per rotation goes (issue 13). The servers run in their own processes with no latency.

Prints figures; asserts nothing. Run: `.venv/bin/python benchmarks/call_costs.py` (BENCH_REPEAT=300).
"""

from __future__ import annotations

import os
import sys
import threading
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from incident import Servers, seed

from rotator import log
from rotator.app import App
from rotator.state.clock import utcnow
from rotator.state.db import Change
from rotator.state.leases import Fence

REPEAT = int(os.environ.get("BENCH_REPEAT", "300"))


def cpu_ms(call: Callable[[], object]) -> float:
    call()
    started = time.process_time()
    for _ in range(REPEAT):
        call()
    return (time.process_time() - started) / REPEAT * 1000


def main() -> None:
    log.configure(level="error")
    srv = Servers.start(0.0)
    try:
        fleet = seed(srv, 2, writes=1000)
        app = App.load(fleet.dir / "rotator.yaml")
        store, secret_id, key = app.store("aws"), fleet.secret_ids[0], fleet.keys[0]["secret"]
        http = app.http("bw", srv.api_url, 10)
        raw = httpx.Client(base_url=srv.api_url.removesuffix("/v1"))
        headers, params = {"Authorization": f"Bearer {key}"}, {"page": 1, "pageSize": 1}
        db = app.db
        rotation = db.create_rotation(
            secret=fleet.names[0], provider="bw", policy="incident", trigger="t", reason="t", actor="t"
        )
        owner = "bench:1:x:b:n:s"

        def lease() -> None:
            db.lease_and_read(rotation.id, rotation.secret, owner, timedelta(minutes=1))
            db.release_lease(rotation.secret, owner)

        generation, held = db.lease_and_read(rotation.id, rotation.secret, owner, timedelta(minutes=1))
        states = iter(["creating", "staged"] * (REPEAT + 1))

        def apply() -> None:
            to = next(states)
            moves = [
                Change({"state": to, "waiting_for": ""}, held.state, utcnow(), event="moved", detail={"a": 1}),
                Change({"next_attempt_at": utcnow()}, to, utcnow(), event="noted", detail={}),
            ]
            db.apply(held, moves, actor="bench", fence=Fence(rotation.secret, owner, generation))
            held.state = to

        def thread() -> None:
            worker = threading.Thread(target=lambda: None)
            worker.start()
            worker.join()

        rows = [
            (
                "boto3 GetSecretValue (moto)",
                lambda: store._client.get_secret_value(SecretId=secret_id, VersionStage="AWSCURRENT"),
            ),  # type: ignore[attr-defined]
            (
                "HttpCore GET (rotator's provider client)",
                lambda: http.request("GET", "/v1/personal-access-tokens", headers=headers, params=params),
            ),
            ("plain httpx GET", lambda: raw.get("/v1/personal-access-tokens", headers=headers, params=params)),
            ("one write: two moves, two audit events", apply),
            ("lease taken with the rotation read, then let go", lease),
            (
                "create_rotation",
                lambda: db.create_rotation(
                    secret=f"x{uuid.uuid4().hex}", provider="bw", policy="incident", trigger="t", reason="t", actor="t"
                ),
            ),
            (
                "old key on record? (one query)",
                lambda: db.key_on_record(rotation.secret, "k", "f", adopted="key.adopted"),
            ),
            ("a thread started and joined (lease keeper)", thread),
        ]
        for what, call in rows:
            print(f"{cpu_ms(call):7.2f} ms CPU  {what}", flush=True)
    finally:
        srv.stop()


if __name__ == "__main__":
    main()
