"""The service file and the container image definition, checked offline by the tools people use."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]


@pytest.fixture
def unit(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at this checkout's rotator (systemd-analyze wants a real path)."""
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    rotator = Path(sys.executable).parent / "rotator"
    text = (ROOT / "systemd" / "rotator.service").read_text().replace("/opt/rotator/venv/bin/rotator", str(rotator))
    path = tmp_path / "rotator.service"
    path.write_text(text)
    return path


def test_systemd_unit_verifies_without_a_word(unit: Path) -> None:
    """systemd-analyze verify exits 0 even on unknown keys, so any output at all is a failure."""
    result = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, check=False)
    assert result.returncode == 0 and result.stdout == "" and result.stderr == "", result.stdout + result.stderr


def test_systemd_unit_is_hardened(unit: Path) -> None:
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", str(unit)], capture_output=True, text=True, check=False
    )
    match = re.search(r"Overall exposure level for rotator.service: ([\d.]+) (\w+)", result.stdout)
    assert match, result.stdout[-500:] + result.stderr
    assert float(match.group(1)) <= 1.5, match.group(0)
    text = unit.read_text()
    for line in (
        "Type=notify",
        "WatchdogSec=",
        "Restart=on-failure",
        "StateDirectory=rotator",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "PrivateTmp=yes",
        "LimitCORE=0",
        "UMask=0077",
    ):
        assert line in text


def test_dockerfile_is_lint_clean() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    result = subprocess.run([str(hadolint), str(ROOT / "Dockerfile")], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    text = (ROOT / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["rotator"]' in text and 'CMD ["run"]' in text and "USER 10001" in text
    assert "VOLUME" in text and "-slim" in text
