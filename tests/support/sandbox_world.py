"""What every per-test world has: its own directory with rotator.yaml, the rotator command run as
a separate process against it, and a provider simulator's controls (requests seen, faults)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from rotator.app import App


class SandboxWorld:
    dir: Path

    @property
    def control_url(self) -> str:
        """The simulator's base URL, where `/_sandbox/` lives."""
        raise NotImplementedError

    def extra_env(self) -> dict[str, str]:
        return {}

    def app(self) -> App:
        return App.load(self.dir / "rotator.yaml")

    def requests(self) -> list[dict[str, Any]]:
        """Every request the simulator saw, this world's and those of the tests before it."""
        return list(httpx.get(f"{self.control_url}/_sandbox/requests").json()["requests"])

    def faults(self, **body: Any) -> None:
        httpx.post(f"{self.control_url}/_sandbox/faults", json=body).raise_for_status()

    def cli(
        self, *args: str, input: str | None = None, env: dict[str, str] | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """`rotator ARGS` as a process of its own, with this world's rotator.yaml."""
        full = {**os.environ, "ROTATOR_CONFIG": str(self.dir / "rotator.yaml"), **self.extra_env(), **(env or {})}
        return subprocess.run(
            [sys.executable, "-m", "rotator", *args],
            env=full,
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input,
            check=False,
        )
