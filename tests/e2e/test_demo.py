"""The README's first command: the demo runs both rotations to completion on its own stand-ins."""

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e


def test_demo_completes_both_rotations(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "rotator", "demo", "--workdir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1].startswith("demo: both rotations completed")
    assert "awaiting_new_key" in result.stdout and "awaiting_revocation" in result.stdout
    assert (tmp_path / "rotator.db").exists()
