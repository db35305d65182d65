"""Runs simulators with uvicorn on loopback, each on its own port, in background threads."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass

import uvicorn

from rotator.sandbox.base import Sandbox
from rotator.sandbox.blueticks import BlueticksSandbox
from rotator.sandbox.boltly import BoltlySandbox
from rotator.sandbox.brandwave import BrandwaveSandbox
from rotator.sandbox.goblue import GoBlueSandbox
from rotator.sandbox.textingblue import TextingBlueSandbox

SIMULATORS: dict[str, type[Sandbox]] = {
    s.name: s for s in (BrandwaveSandbox, BoltlySandbox, BlueticksSandbox, TextingBlueSandbox, GoBlueSandbox)
}


@dataclass
class Running:
    name: str
    simulator: Sandbox
    base_url: str
    """Where the sandbox's controls live (`/_sandbox/...`)."""
    api_url: str
    """The base URL a provider instance is configured with (includes `/v1` where the vendor's does)."""
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def serve(name: str, *, host: str = "127.0.0.1", port: int = 0) -> Running:
    """Start one simulator and return once it accepts connections."""
    simulator = SIMULATORS[name]()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    config = uvicorn.Config(simulator.app(), log_level="warning", access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name=f"sandbox-{name}")
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError(f"sandbox {name} did not start")
        time.sleep(0.01)
    bound_host, bound_port = sock.getsockname()[:2]
    base_url = f"http://{bound_host}:{bound_port}"
    return Running(name, simulator, base_url, base_url + simulator.prefix, server, thread)


def serve_all(*, host: str = "127.0.0.1", ports: dict[str, int] | None = None) -> list[Running]:
    return [serve(name, host=host, port=(ports or {}).get(name, 0)) for name in SIMULATORS]
