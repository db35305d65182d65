"""How long a command takes before it does anything (issue 28: `--version`, `--help` and a TAB of
completion ≤ 0.15 s; `status` ≤ 0.5 s). Prints figures; asserts nothing.

Each row runs the command as a process of its own, RUNS times, and prints the median and the worst
wall time. `status` reads a config with one provider and ten secrets and a fresh SQLite database.

    BENCH_RUNS=7 python benchmarks/cli_start.py
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CONFIG = """\
state: {{directory: "{state}"}}
policies_dir: policies
providers:
  bw:
    type: brandwave
    base_url: http://127.0.0.1:9
    admin_token: {{current: true}}
    grants: [{{store: aws, secret_id: "bench/*"}}]
stores:
  aws: {{type: aws, region: us-east-1, endpoint_url: "http://127.0.0.1:9"}}
"""


def _policies(n: int) -> str:
    rows = [
        f"  - {{name: app-{i}, provider: bw, store: {{aws: {{secret_id: bench/app-{i}}}}}, policy: quarterly}}"
        for i in range(n)
    ]
    return "policies:\n  quarterly: {max_age: 90d}\nsecrets:\n" + "\n".join(rows) + "\n"


def _time(argv: list[str], env: dict[str, str], runs: int) -> tuple[float, float, int]:
    took = []
    code = 0
    for _ in range(runs):
        started = time.perf_counter()
        code = subprocess.run(argv, env=env, capture_output=True, check=False).returncode
        took.append(time.perf_counter() - started)
    return statistics.median(took), max(took), code


def main() -> None:
    runs = int(os.environ.get("BENCH_RUNS", "7"))
    rotator = str(Path(sys.executable).with_name("rotator"))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "policies").mkdir()
        (root / "policies" / "apps.yaml").write_text(_policies(10))
        (root / "rotator.yaml").write_text(CONFIG.format(state=root / "state"))
        env = {**os.environ, "ROTATOR_CONFIG": str(root / "rotator.yaml")}
        completion = {**env, "_ROTATOR_COMPLETE": "bash_complete", "COMP_WORDS": "rotator st", "COMP_CWORD": "1"}
        subprocess.run([rotator, "status"], env=env, capture_output=True, check=False)  # makes the database
        rows = [
            ("rotator --version", [rotator, "--version"], env),
            ("rotator --help", [rotator, "--help"], env),
            ("completion (TAB after `rotator st`)", [rotator], completion),
            ("rotator status --help", [rotator, "status", "--help"], env),
            ("rotator validate --offline (10 secrets)", [rotator, "validate", "--offline"], env),
            ("rotator status (10 secrets, SQLite)", [rotator, "status"], env),
        ]
        print(f"{'command':42} {'median':>8} {'worst':>8}  exit   ({runs} runs each)")
        for label, argv, environ in rows:
            median, worst, code = _time(argv, environ, runs)
            print(f"{label:42} {median:7.3f}s {worst:7.3f}s  {code}")


if __name__ == "__main__":
    main()
