"""Promise 5 at the command line: a key pasted where a name or a setting belongs is never repeated
in the answer — not in a file:line problem, not in `--json`, not in a did-you-mean — and a command
that fails on its arguments before reading any settings masks keys in its traceback too."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

KEY = "bwpat_" + "Q" * 24


def rotator(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ROTATOR_CONFIG": str(tmp_path / "rotator.yaml")}
    return subprocess.run(
        [sys.executable, "-m", "rotator", *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_a_key_in_a_setting_or_an_argument_is_not_repeated(tmp_path: Path) -> None:
    (tmp_path / "rotator.yaml").write_text(f"providers:\n  bw:\n    type: {KEY}\n")
    for args in (("validate", "--offline"), ("validate", "--offline", "--json"), ("status",)):
        done = rotator(tmp_path, *args)
        assert done.returncode == 2 and "rotator.yaml:3:" in done.stdout + done.stderr, done
        assert KEY not in done.stdout + done.stderr, args
    (tmp_path / "rotator.yaml").write_text(f'state: {{url: "sqlite:///{tmp_path}/s.db"}}\n')
    for args in (("login", KEY), ("offboard", KEY, "--dry-run")):
        done = rotator(tmp_path, *args)
        assert done.returncode == 2 and KEY not in done.stdout + done.stderr, (args, done)


def test_a_traceback_before_any_settings_are_read_masks_keys() -> None:
    code = f"from rotator import log; log.install_excepthooks(); int({KEY!r})"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 1 and "ValueError" in done.stderr and KEY not in done.stderr
