"""An idle daemon over a large fleet: policy loading, one tick with nothing due, one /metrics scrape.

Prints figures; asserts nothing. `BENCH_FLEET=100000 python benchmarks/fleet_tick.py` for the
issue's 100k figure (default 10,000). "Warm": the state database holds one completed rotation per
secret from 10 days ago, and the quarterly policy's window is closed now, so nothing is due and no
store or provider is ever called.
"""

from __future__ import annotations

import os
import resource
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import insert

from rotator import log
from rotator.app import App
from rotator.daemon.service import Daemon
from rotator.state.db import utcnow
from rotator.state.schema import Rotation

N = int(os.environ.get("BENCH_FLEET", "10000"))

CONFIG = """\
state: {{url: "sqlite:///{dir}/state.db"}}
policies_dir: policies
log: {{level: error, format: json}}
providers:
  bw:
    type: brandwave
    base_url: http://127.0.0.1:9
    admin_token: {{current: true}}
    grants: [{{store: aws, secret_id: "fleet/*"}}]
stores:
  aws: {{type: aws, region: us-east-1, endpoint_url: "http://127.0.0.1:9"}}
daemon: {{listen: "127.0.0.1:0", tick: 5s}}
"""


def closed_window() -> str:
    """A one-hour window twelve hours from now (UTC): closed while the benchmark runs."""
    opens = (utcnow() + timedelta(hours=12)).hour
    return f"Mon-Sun {opens:02d}:00-{(opens + 1) % 24:02d}:00 UTC" if opens != 23 else "Mon-Sun 22:00-23:00 UTC"


def write_fleet(directory: Path) -> None:
    (directory / "rotator.yaml").write_text(CONFIG.format(dir=directory))
    (directory / "policies").mkdir()
    lines = [
        "policies:",
        "  quarterly:",
        "    max_age: 90d",
        f'    window: "{closed_window()}"',
        "    jitter: 30m",
        "secrets:",
    ]
    for i in range(N):
        lines += [
            f"  - name: app-{i:06d}",
            "    provider: bw",
            f"    store: {{aws: {{secret_id: fleet/app-{i:06d}}}}}",
            "    policy: quarterly",
            "    access: [alice@example.com]",
        ]
    (directory / "policies" / "fleet.yaml").write_text("\n".join(lines) + "\n")


def seed_completed(app: App) -> None:
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
        for i in range(N)
    ]
    with app.db.session() as s:
        s.execute(insert(Rotation), rows)


def timed(what: str, action: object) -> float:
    started = time.perf_counter()
    action()  # type: ignore[operator]
    elapsed = time.perf_counter() - started
    print(f"{what:34} {elapsed * 1000:9.0f} ms")
    return elapsed


def main() -> None:
    log.configure(level="error")
    directory = Path(tempfile.mkdtemp())
    write_fleet(directory)
    size = (directory / "policies" / "fleet.yaml").stat().st_size
    print(f"fleet: {N} secrets, policy file {size / 1e6:.1f} MB")
    loaded: list[App] = []
    timed("load rotator.yaml + policies", lambda: loaded.append(App.load(directory / "rotator.yaml")))
    app = loaded[0]
    seed_completed(app)
    daemon = Daemon(directory / "rotator.yaml", None, app)
    timed("first tick (nothing due)", daemon.tick)
    ticks = [timed("tick (nothing due)", daemon.tick) for _ in range(3)]
    scrape: list[bytes] = []
    timed("/metrics scrape", lambda: scrape.append(daemon.scrape()))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"best tick {min(ticks) * 1000:.0f} ms; scrape {len(scrape[0]) / 1e6:.1f} MB; peak RSS {rss:.0f} MB")
    assert not app.db.active(), "nothing should have been due"


if __name__ == "__main__":
    main()
