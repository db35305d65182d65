"""The service file and the container image definition, checked offline by the tools people use."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
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
    # reproducible: the base by digest, every dependency from the constraints the repo keeps
    assert re.search(r"^ARG PYTHON_IMAGE=python:[\w.-]+@sha256:[0-9a-f]{64}$", text, re.M)
    assert "--constraint constraints.txt" in text
    # the health check follows daemon.listen instead of a port written into the image
    assert "HEALTHCHECK" in text and '"rotator", "health"' in text and "9464/healthz" not in text
    for label in ("title", "licenses", "version", "revision", "created"):
        assert f"org.opencontainers.image.{label}=" in text
    # what the image says is what runs: its version, and the port the daemon listens on
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert re.search(rf"^ARG VERSION={re.escape(version)}$", text, re.M)
    (exposed,) = re.findall(r"^EXPOSE (\d+)$", text, re.M)
    assert re.search(rf"ROTATOR_DAEMON__LISTEN=0\.0\.0\.0:{exposed}\b", text)


def test_the_constraints_pin_every_runtime_dependency() -> None:
    pinned = {
        line.split("==")[0].lower().replace("_", "-")
        for line in (ROOT / "constraints.txt").read_text().splitlines()
        if "==" in line
    }
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = [*project["dependencies"], *project["optional-dependencies"]["postgres"]]
    names = {re.split(r"[<>=\[ ]", spec, maxsplit=1)[0].lower().replace("_", "-") for spec in wanted}
    assert names <= pinned, names - pinned


def test_help_version_and_completion_load_no_engine_settings_or_database() -> None:
    """`--help`, `--version` and each TAB of completion import only the command line: the engine,
    the settings, the state database and the log setup come with the command that needs them
    (benchmarks/cli_start.py times it)."""
    heavy = (
        "sqlalchemy",
        "pydantic",
        "structlog",
        "httpx",
        "boto3",
        "rotator.app",
        "rotator.settings.config",
        "rotator.engine",
    )
    probe = (
        "import os, sys\n"
        "from rotator.cli import main\n"
        "os.environ.update(_ROTATOR_COMPLETE='bash_complete', COMP_WORDS='rotator st', COMP_CWORD='1')\n"
        "try:\n"
        "    main([], prog_name='rotator')\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print(sorted(m for m in sys.modules if m.startswith({heavy!r})))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert "plain,status" in result.stdout  # the completion answered
    assert result.stdout.strip().splitlines()[-1] == "[]"
    for flag in ("--help", "--version"):
        loaded = subprocess.run(
            [
                sys.executable,
                "-c",
                f"import sys\nfrom rotator.cli import main\ntry:\n    main(['{flag}'])\n"
                f"except SystemExit:\n    pass\nprint(sorted(m for m in sys.modules if m.startswith({heavy!r})))",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        assert loaded.stdout.strip().splitlines()[-1] == "[]", (flag, loaded.stdout)
