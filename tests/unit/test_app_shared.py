"""What App hands out once per process stays one object when many rotations ask at the same time:
an incident's workers all start together, and a store or HTTP client made twice means a second
connection pool and, worse, a second rate-limit window that the first does not count."""

from __future__ import annotations

import threading
from pathlib import Path

from rotator.app import App

ROOT = Path(__file__).parents[2]
WORKERS = 16


def at_once(call: object) -> list[object]:
    barrier = threading.Barrier(WORKERS)
    got: list[object] = []

    def one() -> None:
        barrier.wait()
        got.append(call())  # type: ignore[operator]

    threads = [threading.Thread(target=one) for _ in range(WORKERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return got


def test_workers_starting_together_share_one_store_and_one_http_client() -> None:
    app = App.load(ROOT / "rotator.example.yaml", ROOT / "policies")
    stores = at_once(lambda: app.store("aws"))
    clients = at_once(lambda: app.http("brandwave-prod", "http://127.0.0.1:9", 5.0))
    assert len(stores) == len(clients) == WORKERS
    assert len({id(s) for s in stores}) == 1
    assert len({id(c) for c in clients}) == 1
