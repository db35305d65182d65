"""`rotator validate` over one ~20 MB policy file (140,000 secrets), valid and with one fault of
each kind near its end (issue 29: ≤ 5 s and ≤ 300 MB asked). Prints figures; asserts nothing.

Each row runs `rotator validate --offline` as a process: wall time, peak RSS, exit code and the
first line it printed (the line number must point at the fault).

    BENCH_SECRETS=140000 python benchmarks/validate_big.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fleet import write_fleet

FAULTS = {
    "valid": None,
    "unknown provider": "    provider: nosuch",
    "unknown field": "    provider: bw\n    colour: red",
    "duplicate key": "    provider: bw\n    provider: bw",
    "explicit tag": "    provider: !x bw",
    "null value": "    provider:",
    "syntax error": "    provider: [bw",
    "control character": "    provider: b\x07w",
}


def main() -> None:
    n = int(os.environ.get("BENCH_SECRETS", "140000"))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_fleet(root, n)
        fleet = root / "policies" / "fleet.yaml"
        good = fleet.read_text()
        at = good.rfind("    provider: bw")
        line = good.count("\n", 0, at) + 1
        print(f"one policy file of {n} secrets, {len(good) / 1e6:.1f} MB; each fault at line {line}")
        print(f"{'input':<20} {'wall s':>7} {'peak MB':>8} {'exit':>5}  first line")
        for name, fault in FAULTS.items():
            fleet.write_text(good if fault is None else good[:at] + fault + good[at + len("    provider: bw") :])
            start = time.perf_counter()
            with tempfile.TemporaryFile("w+") as out:
                child = subprocess.Popen(
                    [sys.executable, "-m", "rotator", "--config", str(root / "rotator.yaml"), "validate", "--offline"],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    text=True,
                )
                _, status, usage = os.wait4(child.pid, 0)
                child.returncode = os.waitstatus_to_exitcode(status)
                wall = time.perf_counter() - start
                out.seek(0)
                output = out.read()
            first = output.strip().splitlines()[0].replace(str(root) + "/", "")
            print(f"{name:<20} {wall:7.1f} {usage.ru_maxrss / 1024:8.0f} {child.returncode:5}  {first[:100]}")


if __name__ == "__main__":
    main()
