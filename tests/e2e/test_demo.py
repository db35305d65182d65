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


def test_demo_without_a_workdir_leaves_no_files_behind(tmp_path: Path) -> None:
    import os

    result = subprocess.run(
        [sys.executable, "-m", "rotator", "demo"],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        env={**os.environ, "TMPDIR": str(tmp_path)},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "both rotations completed" in result.stdout and "--workdir DIR` keeps them" in result.stdout
    assert not list(tmp_path.glob("rotator-demo-*"))


@pytest.mark.parametrize("command", ["sandbox", "demo"])
def test_without_the_simulators_installed_the_command_says_how_to_install_them(command: str) -> None:
    """The simulators are a distribution of their own (never in rotator's wheel or image)."""
    hide = "import sys; sys.modules['rotator_sandbox'] = None; from rotator.cli import main; main()"
    result = subprocess.run(
        [sys.executable, "-c", hide, command], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "pip install ./sandbox" in result.stderr and "Traceback" not in result.stderr


def test_the_wheel_holds_no_simulator(tmp_path: Path) -> None:
    root = Path(__file__).parents[2]
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(tmp_path), str(root)],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    import zipfile

    (wheel,) = tmp_path.glob("rotator-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert any(n.startswith("rotator/cli/") for n in names)
    assert not any("sandbox" in n for n in names), [n for n in names if "sandbox" in n]
