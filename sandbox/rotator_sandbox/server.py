"""Runs simulators on loopback, each on its own port, in background threads."""

from __future__ import annotations

from dataclasses import dataclass

from rotator.runtime.background_http import Served, serve_app
from rotator_sandbox.base import Sandbox
from rotator_sandbox.blueticks import BlueticksSandbox
from rotator_sandbox.boltly import BoltlySandbox
from rotator_sandbox.brandwave import BrandwaveSandbox
from rotator_sandbox.goblue import GoBlueSandbox
from rotator_sandbox.textingblue import TextingBlueSandbox

SIMULATORS: dict[str, type[Sandbox]] = {
    s.name: s for s in (BrandwaveSandbox, BoltlySandbox, BlueticksSandbox, TextingBlueSandbox, GoBlueSandbox)
}


@dataclass
class Running:
    name: str
    simulator: Sandbox
    served: Served

    @property
    def base_url(self) -> str:
        """Where the sandbox's controls live (`/_sandbox/...`)."""
        return self.served.url

    @property
    def api_url(self) -> str:
        """The base URL a provider instance is configured with (includes `/v1` where the vendor's does)."""
        return self.served.url + self.simulator.prefix

    def stop(self) -> None:
        self.served.stop()


def serve(name: str, *, host: str = "127.0.0.1", port: int = 0) -> Running:
    """Start one simulator and return once it accepts connections."""
    simulator = SIMULATORS[name]()
    return Running(name, simulator, serve_app(simulator.app(), host=host, port=port, name=f"sandbox-{name}"))


def serve_all(*, host: str = "127.0.0.1", ports: dict[str, int] | None = None) -> list[Running]:
    return [serve(name, host=host, port=(ports or {}).get(name, 0)) for name in SIMULATORS]
