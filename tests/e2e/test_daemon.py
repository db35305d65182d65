"""`rotator run` as a real process, with policies in seconds instead of days."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.world import World

pytestmark = pytest.mark.e2e
DEPLOY = Path(__file__).parents[2] / "deploy"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Daemon:
    def __init__(self, world: World, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.world = world
        config = world.config.read_text()
        if "daemon:" not in config:
            world.config.write_text(config + "daemon: {listen: '127.0.0.1:PORT', tick: 300ms}\n")
        world.config.write_text(
            world.config.read_text().replace(
                world.config.read_text().split("listen: '")[1].split("'")[0], f"127.0.0.1:{self.port}"
            )
        )
        self.log = world.dir / f"daemon-{self.port}.log"
        full = {**os.environ, "ROTATOR_CONFIG": str(world.config), **(env or {})}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "rotator", "run"], env=full, stdout=self.log.open("w"), stderr=subprocess.STDOUT
        )
        self.url = f"http://127.0.0.1:{self.port}"

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.url + path, timeout=5)

    def ready(self) -> bool:
        try:
            return self.get("/readyz").status_code == 200
        except httpx.TransportError:
            return False

    def output(self) -> str:
        return self.log.read_text()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout=timeout)


def wait_for(condition: Callable[[], object], timeout: float = 120, what: str = "condition") -> None:
    """Until `condition` holds: the deadline only ends a test that would never pass, so it is far
    beyond what a slow machine needs (a daemon's rotation under a neighbour's incident took 30 s)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def make_due(world: World, max_age: str = "1h", extra_policy: str = "") -> None:
    """The key is two hours old; the policy wants it rotated hourly."""
    current = world.current()
    current["rotated_at"] = (datetime.now(UTC) - timedelta(hours=2)).isoformat()
    world.sm.put_secret_value(SecretId=world.secret_id, SecretString=json.dumps(current))
    policy = world.dir / "policies" / "main.yaml"
    policy.write_text(policy.read_text().replace("max_age: 90d", f"max_age: {max_age}{extra_policy}"))


@pytest.fixture
def daemons() -> Iterator[list[Daemon]]:
    started: list[Daemon] = []
    yield started
    for d in started:
        if d.process.poll() is None:
            d.process.kill()
            d.process.wait()


def completed(world: World) -> int:
    return sum(r.state == "completed" for r in world.app().db.rotations_of(world.name))


def test_rotates_a_due_secret_serves_health_and_metrics_and_stops_cleanly(world: World, daemons: list[Daemon]) -> None:
    make_due(world)
    world.config.write_text(world.config.read_text() + "notifications: [{url: 'http://127.0.0.1:9/nobody-listens'}]\n")
    d = Daemon(world)
    daemons.append(d)
    wait_for(lambda: completed(world) == 1, what="the daemon to rotate the due secret")
    assert d.get("/healthz").status_code == 200 and d.get("/readyz").status_code == 200
    assert world.live_ids() == {world.current()["key_id"]} and world.current()["key_id"] != world.first["id"]
    rotation = world.app().db.last_completed(world.name)
    assert rotation is not None and rotation.trigger == "policy" and rotation.started_by.startswith("daemon:")

    scraped = d.get("/metrics").text
    families = {f.name: f for f in text_string_to_metric_families(scraped)}
    finished = {
        tuple(sorted(s.labels.items())): s.value
        for s in families["rotator_rotations"].samples
        if s.name == "rotator_rotations_total"
    }
    assert finished[(("outcome", "completed"), ("provider", "bw"))] == completed(world)
    ages = {s.labels["secret"]: s.value for s in families["rotator_key_age_seconds"].samples}
    assert 0 <= ages[world.name] < 60
    due = {s.labels["secret"]: s.value for s in families["rotator_next_due_timestamp_seconds"].samples}
    assert due[world.name] == pytest.approx(rotation.finished_at.timestamp() + 3600, abs=1)  # type: ignore[union-attr]
    steps = [s for s in families["rotator_step_seconds"].samples if s.name == "rotator_step_seconds_count"]
    assert sum(s.value for s in steps) >= 8
    allowed = {s.labels["secret"]: s.value for s in families["rotator_key_max_age_seconds"].samples}
    assert allowed[world.name] == 3600
    (ticked,) = families["rotator_last_tick_timestamp_seconds"].samples
    assert time.time() - 30 < ticked.value <= time.time()
    assert families["rotator_rotations_held"].samples == []
    assert families["rotator_operator_action_waiting_seconds"].samples[0].value == 0
    # the shipped alert rules and dashboard only name series a daemon serves (a renamed metric would
    # leave an alert silent and a panel empty)
    served = {name for f in families.values() for name in (f.name, *(s.name for s in f.samples))}
    served |= {f"{f.name}_total" for f in families.values() if f.type == "counter"}
    shipped = (DEPLOY / "prometheus" / "rotator-rules.yaml", DEPLOY / "grafana" / "rotator-dashboard.json")
    named = {name for path in shipped for name in re.findall(r"\brotator_[a-z_]+", path.read_text())}
    assert named and named <= served, named - served

    def notification_failures() -> float:
        text = d.get("/metrics").text
        found = {f.name: f for f in text_string_to_metric_families(text)}["rotator_notification_failures"]
        return sum(s.value for s in found.samples if s.name == "rotator_notification_failures_total")

    wait_for(lambda: notification_failures() >= 1, what="a failed notification to be counted")

    # `rotator health` (the image's HEALTHCHECK) finds the daemon at daemon.listen
    for args in ((), ("--ready",)):
        asked = world.cli("health", *args)
        assert asked.returncode == 0 and f"127.0.0.1:{d.port}/" in asked.stdout, asked.stdout + asked.stderr

    started = time.monotonic()
    assert d.stop() == 0
    assert time.monotonic() - started < 15
    assert "daemon.stopped" in d.output()
    stopped = world.cli("health")
    assert stopped.returncode == 1 and "nothing listens there: is `rotator run` running" in stopped.stderr
    assert completed(world) == 1  # due again only in an hour


def test_respects_the_window(world: World, daemons: list[Daemon]) -> None:
    not_today = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"][(datetime.now(UTC).weekday() + 3) % 7]
    make_due(world, extra_policy=f'\n    window: "{not_today} 00:00-00:01 UTC"')
    d = Daemon(world)
    daemons.append(d)
    wait_for(d.ready, what="readiness")
    time.sleep(1.5)  # several ticks
    assert world.app().db.rotations_of(world.name) == []
    plan = json.loads(world.cli("plan", "--json").stdout)["secrets"][0]
    assert plan["next_start"] > datetime.now(UTC).isoformat() and "waits for window" in plan["why"]
    assert d.stop() == 0


def test_survives_sigkill_mid_rotation(world: World, daemons: list[Daemon]) -> None:
    make_due(world)
    first = Daemon(world, env={"ROTATOR_FAILPOINTS": "after-stage-write"})
    daemons.append(first)
    assert first.process.wait(timeout=30) == -signal.SIGKILL
    rotation = world.app().db.active_for(world.name)
    assert rotation is not None and rotation.state == "creating"
    second = Daemon(world)
    daemons.append(second)
    wait_for(lambda: completed(world) == 1, what="the restarted daemon to complete the rotation")
    assert world.app().db.last_completed(world.name).id == rotation.id  # type: ignore[union-attr]
    assert world.live_ids() == {world.current()["key_id"]}
    assert second.stop() == 0


def test_sighup_keeps_the_old_policies_when_new_ones_are_broken(world: World, daemons: list[Daemon]) -> None:
    d = Daemon(world)
    daemons.append(d)
    wait_for(d.ready, what="readiness")
    broken = world.dir / "policies" / "broken.yaml"
    broken.write_text("policies:\n  x: {max_age: soon}\n")
    d.process.send_signal(signal.SIGHUP)
    wait_for(lambda: "policies.reload_failed" in d.output(), what="the reload to fail")
    assert f"{broken}:2:" in d.output()
    assert d.get("/healthz").status_code == 200 and d.process.poll() is None
    broken.unlink()
    make_due(world)
    d.process.send_signal(signal.SIGHUP)
    wait_for(lambda: completed(world) == 1, what="the reloaded policy to rotate the secret")
    assert d.stop() == 0


def test_sends_ready_watchdog_and_status_to_systemd(world: World, daemons: list[Daemon], tmp_path: Path) -> None:
    path = str(tmp_path / "notify.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(path)
    listener.settimeout(10)
    d = Daemon(world, env={"NOTIFY_SOCKET": path})
    daemons.append(d)
    seen: set[str] = set()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not {"READY=1", "WATCHDOG=1", "STATUS"} <= seen:
        message = listener.recv(4096).decode()
        seen.add(message.split("=")[0] if message.startswith("STATUS=") else message)
    assert {"READY=1", "WATCHDOG=1", "STATUS"} <= seen
    assert d.stop() == 0
    listener.close()


def test_two_replicas_share_the_work(tmp_path: Path, world: World, daemons: list[Daemon]) -> None:
    """Two daemons on one state database: each due rotation runs once, each old key is revoked once."""
    from rotator.providers.brandwave import PATH

    make_due(world)
    first = Daemon(world)
    daemons.append(first)
    config = world.config.read_text()
    second_config = world.dir / "second.yaml"
    second_config.write_text(config.replace(f"127.0.0.1:{first.port}", f"127.0.0.1:{free_port()}"))
    second = subprocess.Popen(
        [sys.executable, "-m", "rotator", "--config", str(second_config), "run"],
        stdout=(world.dir / "second.log").open("w"),
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for(lambda: completed(world) == 1, what="one of the replicas to rotate the secret")
        time.sleep(1.0)  # a few more ticks of both
        assert len(world.app().db.rotations_of(world.name)) == 1
        deletes = [
            r for r in world.requests() if r["method"] == "DELETE" and r["path"] == f"{PATH}/{world.first['id']}"
        ]
        assert len(deletes) == 1
        assert world.live_ids() == {world.current()["key_id"]}
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=20) == 0
    assert first.stop() == 0


def test_notify_before_announces_an_upcoming_rotation(world: World, daemons: list[Daemon]) -> None:
    """A secret due outside its window: the daemon sends an `upcoming` notification ahead, and starts nothing."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    from rotator.runtime.background_http import serve_app

    received: list[dict[str, object]] = []

    async def hook(request: Request) -> Response:
        received.append(await request.json())
        return JSONResponse({"ok": True})

    served = serve_app(
        Starlette(routes=[Route("/hook", hook, methods=["POST"])]), host="127.0.0.1", port=0, name="webhook"
    )
    try:
        not_today = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"][(datetime.now(UTC).weekday() + 3) % 7]
        make_due(world, extra_policy=f'\n    window: "{not_today} 00:00-00:01 UTC"\n    notify_before: 7d')
        world.config.write_text(world.config.read_text() + f"notifications:\n  - {{url: '{served.url}/hook'}}\n")
        d = Daemon(world)
        daemons.append(d)
        wait_for(lambda: any(r.get("event") == "upcoming" for r in received), what="an upcoming notification")
        time.sleep(1.0)
        upcoming = [r for r in received if r.get("event") == "upcoming"]
        assert len(upcoming) == 1 and upcoming[0]["secret"] == world.name  # announced once, not every tick
        assert world.app().db.rotations_of(world.name) == []
        assert d.stop() == 0
    finally:
        served.stop()


def test_a_cold_start_reads_stored_ages_beside_the_ticks_and_rotates_only_what_is_due(
    world: World, daemons: list[Daemon]
) -> None:
    """Secrets never rotated here: their ages come from the store, read in bulk by discovery
    while the daemon already ticks; the one found old is rotated, the fresh ones are not."""
    make_due(world)
    now = datetime.now(UTC).isoformat()
    fresh = [f"{world.name}-fresh-{i:02d}" for i in range(60)]
    lines = []
    for i, name in enumerate(fresh):
        value = {"api_key": f"unused-{i}", "key_id": f"unused-{i}", "rotated_at": now}
        world.sm.create_secret(Name=f"test/{name}", SecretString=json.dumps(value))
        lines.append(f"  - {{name: {name}, provider: bw, store: {{aws: {{secret_id: test/{name}}}}}, policy: fast}}\n")
    policy = world.dir / "policies" / "main.yaml"
    policy.write_text(policy.read_text().replace("teams:\n", "".join(lines) + "teams:\n"))
    d = Daemon(world)
    daemons.append(d)
    wait_for(lambda: completed(world) == 1, what="the secret discovery found old to be rotated")

    def pending() -> float:
        families = {f.name: f for f in text_string_to_metric_families(d.get("/metrics").text)}
        return families["rotator_discovery_pending"].samples[0].value

    wait_for(lambda: pending() == 0, what="discovery to finish")
    time.sleep(1.0)  # a few more ticks with every age known
    app = world.app()
    assert not [n for n in fresh if app.db.rotations_of(n)]
    assert d.stop() == 0
