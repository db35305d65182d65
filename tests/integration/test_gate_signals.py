"""The cutover gate's signals against real parts: a consumer over HTTP, the sandbox's usage data,
webhook notifications received over HTTP; release and abort by a person."""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from rotator.app import App
from rotator.engine import interventions
from rotator.errors import RotationError
from rotator.runtime.background_http import Served, serve_app
from rotator.state.schema import Rotation
from tests.support.world import World


@dataclass
class Consumer:
    """An application: on reload it re-reads AWSCURRENT; it reports the fingerprint of the key it holds."""

    world: World | None = None
    confirms: bool = True
    reloads: int = 0
    key: str = ""
    hooks: list[dict[str, Any]] = field(default_factory=list)
    on_confirm: Callable[[], None] | None = None
    reload_bodies: list[Any] = field(default_factory=list)
    reload_takes: float = 0.0

    async def reload(self, request: Request) -> Response:
        self.reloads += 1
        body = await request.body()
        self.reload_bodies.append(json.loads(body) if body else None)
        if self.reload_takes:
            await asyncio.sleep(self.reload_takes)
        assert self.world is not None
        self.key = self.world.current()["api_key"]
        return JSONResponse({"ok": True})

    async def fingerprint(self, request: Request) -> Response:
        if self.on_confirm is not None:
            self.on_confirm()
        held = self.key if self.confirms else "an-old-key"
        return PlainTextResponse("sha256:" + hashlib.sha256(held.encode()).hexdigest()[:12])

    async def hook(self, request: Request) -> Response:
        self.hooks.append(await request.json())
        return JSONResponse({"ok": True})


@pytest.fixture
def consumer() -> Iterator[tuple[Consumer, Served]]:
    c = Consumer()
    served = serve_app(
        Starlette(
            routes=[
                Route("/reload", c.reload, methods=["POST"]),
                Route("/fp", c.fingerprint),
                Route("/hook", c.hook, methods=["POST"]),
            ]
        ),
        host="127.0.0.1",
        port=0,
        name="consumer",
    )
    yield c, served
    served.stop()


def configure(world: World, served: Served, cutover: str, *, consumers: bool = True) -> None:
    policy = world.dir / "policies" / "main.yaml"
    text = policy.read_text().replace("cutover: {min_soak: 0s}", f"cutover: {cutover}")
    if consumers:
        hooks = (
            "    consumers:\n      - name: api\n"
            f"        reload: {{http: {{method: POST, url: '{served.url}/reload'}}}}\n"
            f"        confirm: {{http: {{url: '{served.url}/fp'}}}}\n"
        )
        access = "    access: [alice@example.com, team:support]\n"
        text = text.replace(access, access + hooks)
    policy.write_text(text)
    world.config.write_text(
        world.config.read_text().replace("engine:\n", "engine:\n  gate_poll: 200ms\n")
        + f"notifications:\n  - {{url: '{served.url}/hook'}}\n"
    )


def rotate(world: World) -> tuple[App, Rotation]:
    app = world.app()
    rotation = app.db.create_rotation(
        secret=world.name, provider="bw", policy="fast", trigger="manual", reason="t", actor="t"
    )
    final = app.runner("t").run(rotation.id, follow=True)
    app.notifier.flush()
    return app, final


def test_a_confirming_consumer_opens_the_gate(world: World, consumer: tuple[Consumer, Served]) -> None:
    c, served = consumer
    c.world = world
    configure(world, served, "{min_soak: 0s, require: [consumers], max_wait: 30s, on_timeout: hold}")
    _, done = rotate(world)
    assert done.state == "completed" and c.reloads == 1
    assert world.live_ids() == {done.new_key_id}
    events = [h["event"] for h in c.hooks]
    assert events[0] == "started" and events[-1] == "completed"


def test_a_consumer_reload_is_on_record_before_confirm_and_history_names_who_confirmed(
    world: World, consumer: tuple[Consumer, Served]
) -> None:
    """The reload is written before the confirm hook is asked (a restart must not reload again);
    history says which consumer confirmed which fingerprint, and why the gate opened."""
    c, served = consumer
    c.world = world
    configure(world, served, "{min_soak: 0s, require: [consumers], max_wait: 30s, on_timeout: hold}")
    app = world.app()
    rotation = app.db.create_rotation(
        secret=world.name, provider="bw", policy="fast", trigger="manual", reason="t", actor="t"
    )
    seen: list[Any] = []
    watcher = world.app()  # another process's view: only what was written
    c.on_confirm = lambda: seen.append((watcher.db.get(rotation.id).gate_state or {}).get("consumers"))
    done = app.runner("t").run(rotation.id, follow=True)
    assert done.state == "completed" and c.reloads == 1
    assert seen and seen[0] == {"api": {"reloaded": True}}
    events = app.db.events(rotation_id=done.id)
    confirmed = [e.detail for e in events if e.event == "consumer.confirmed"]
    assert confirmed == [{"consumer": "api", "fingerprint": done.new_fingerprint}]
    opened = [e.detail for e in events if e.event == "cutover.open"]
    assert len(opened) == 1 and "consumers: passed (every consumer reports the new key)" in opened[0]["signals"]


def test_a_consumer_that_never_confirms_holds_the_gate_and_alerts(
    world: World, consumer: tuple[Consumer, Served]
) -> None:
    c, served = consumer
    c.world, c.confirms = world, False
    configure(world, served, "{min_soak: 0s, require: [consumers], max_wait: 1s, on_timeout: hold}")
    app, done = rotate(world)
    assert done.state == "cutover_wait" and done.held_reason and "not yet on the new key: api" in done.held_reason
    assert world.probe(world.first["token"]) == 200  # the old key lives on
    held = [h for h in c.hooks if h["event"] == "held"]
    assert held and held[0]["secret"] == world.name and "max_wait" in held[0]["reason"]
    on_record = [e.detail for e in app.db.events(rotation_id=done.id) if e.event == "rotation.held"]
    assert len(on_record) == 1 and on_record[0]["reason"] == done.held_reason  # history says it held, once
    for hook in c.hooks:
        assert world.first["token"] not in json.dumps(hook) and world.current()["api_key"] not in json.dumps(hook)

    # a person looks, decides, and releases the gate
    engine = app.runner("person").engine
    released = interventions.release(engine, app.db.get(done.id), why="api team confirmed by phone")
    final = app.runner("person").run(released.id, follow=True)
    assert final.state == "completed" and world.probe(world.first["token"]) == 401


def test_traffic_on_the_old_key_keeps_old_key_idle_shut(world: World, consumer: tuple[Consumer, Served]) -> None:
    _, served = consumer
    configure(
        world,
        served,
        "{min_soak: 0s, require: [old_key_idle], idle_for: 1s, max_wait: 3s, on_timeout: hold}",
        consumers=False,
    )
    stop = threading.Event()

    def straggler() -> None:  # an application that never moved over
        while not stop.wait(0.2):
            world.probe(world.first["token"])

    thread = threading.Thread(target=straggler)
    thread.start()
    try:
        _, done = rotate(world)
    finally:
        stop.set()
        thread.join()
    assert (
        done.state == "cutover_wait"
        and done.held_reason
        and "old_key_idle: waiting (old key used at" in done.held_reason
    )
    assert world.probe(world.first["token"]) == 200


def test_an_idle_old_key_opens_the_gate(world: World, consumer: tuple[Consumer, Served]) -> None:
    _, served = consumer
    configure(world, served, "{min_soak: 0s, require: [old_key_idle], idle_for: 1s, max_wait: 30s}", consumers=False)
    _, done = rotate(world)
    assert done.state == "completed"


def test_abort_at_the_gate_keeps_both_keys(world: World, consumer: tuple[Consumer, Served]) -> None:
    c, served = consumer
    c.world, c.confirms = world, False
    configure(world, served, "{min_soak: 0s, require: [consumers], max_wait: 1h, on_timeout: hold}")
    app = world.app()
    rotation = app.db.create_rotation(
        secret=world.name, provider="bw", policy="fast", trigger="manual", reason="t", actor="t"
    )
    waiting = app.runner("t").run(rotation.id, follow=False)
    assert waiting.state == "cutover_wait"
    aborted = interventions.abort(app.runner("person").engine, waiting, why="consumer broken")
    assert aborted.state == "failed" and "aborted" in (aborted.failed_reason or "")
    assert world.probe(world.first["token"]) == 200 and world.probe(world.current()["api_key"]) == 200
    with pytest.raises(RotationError, match=r"already ended \(failed\); there is nothing to abort"):
        interventions.abort(app.runner("person").engine, aborted, why="again")

    # the old key is still alive: recorded, shown by status, reported by reconcile until revoked
    from rotator.operations.reconcile import reconcile
    from rotator.operations.views import status_rows

    kept = status_rows(app, world.name)[0]["left_alive"]
    assert [k["key_id"] for k in kept] == [world.first["id"]] and "aborted at the cutover gate" in kept[0]["why"]
    findings = reconcile(app, fix=False, actor="t")
    assert [f.kind for f in findings if f.where == world.name] == ["left-alive"]
    import httpx

    httpx.post(f"{world.brandwave}/_sandbox/keys/{world.first['id']}/revoke").raise_for_status()
    assert not [f for f in reconcile(app, fix=False, actor="t") if f.where == world.name]
    assert app.db.leftovers(world.name) == []
    assert "leftover.resolved" in [e.event for e in app.db.events(secret=world.name)]


def test_slack_format_is_text_without_keys(world: World, consumer: tuple[Consumer, Served]) -> None:
    c, served = consumer
    configure(world, served, "{min_soak: 0s}", consumers=False)
    world.config.write_text(
        world.config.read_text().replace(
            f"{{url: '{served.url}/hook'}}", f"{{url: '{served.url}/hook', format: slack}}"
        )
    )
    _, done = rotate(world)
    assert done.state == "completed"
    texts = [h["text"] for h in c.hooks]
    assert any(t.startswith("rotator rotated `" + world.name) for t in texts)


def test_on_timeout_revoke_revokes_at_the_deadline_without_the_gate(
    world: World, consumer: tuple[Consumer, Served]
) -> None:
    """A consumer that never confirms, `on_timeout: revoke`: at max_wait the old key is revoked and proven dead."""
    c, served = consumer
    c.world, c.confirms = world, False
    configure(world, served, "{min_soak: 0s, require: [consumers], max_wait: 1s, on_timeout: revoke}")
    app, done = rotate(world)
    assert done.state == "completed"
    events = [e.event for e in app.db.events(rotation_id=done.id)]
    assert "cutover.deadline_revoke" in events and "cutover.open" not in events
    assert done.revoked_at is not None and done.promoted_at is not None
    assert (done.revoked_at - done.promoted_at).total_seconds() >= 1.0
    assert world.probe(world.first["token"]) == 401
    assert world.live_ids() == {done.new_key_id}


@pytest.mark.parametrize(("soak", "confirm_after"), [(1.5, 0.0), (0.0, 2.0)], ids=["min_soak", "consumers"])
def test_the_old_key_works_until_every_gate_signal_passed(
    world: World, consumer: tuple[Consumer, Served], soak: float, confirm_after: float
) -> None:
    """Polled throughout: the old key authenticates until min_soak has passed and the consumer confirmed, then 401."""
    c, served = consumer
    c.world, c.confirms = world, confirm_after == 0
    configure(
        world, served, f"{{min_soak: {int(soak * 1000)}ms, require: [consumers], max_wait: 30s, on_timeout: hold}}"
    )
    polls: list[tuple[float, float, int]] = []  # (sent, answered, status)
    confirmed_at: list[float] = [time.time()] if c.confirms else []
    stop = threading.Event()

    def poll() -> None:
        while not stop.wait(0.05):
            sent = time.time()
            status = world.probe(world.first["token"])
            polls.append((sent, time.time(), status))

    def confirm_later() -> None:
        if not c.confirms:
            stop.wait(confirm_after)
            confirmed_at.append(time.time())
            c.confirms = True

    threads = [threading.Thread(target=poll), threading.Thread(target=confirm_later)]
    for thread in threads:
        thread.start()
    try:
        _, done = rotate(world)
        time.sleep(0.3)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert done.state == "completed" and done.promoted_at is not None
    gate_opens = max(done.promoted_at.timestamp() + soak, confirmed_at[0])
    # a poll answered before the gate opened was served before any revocation could be; one sent
    # after the rotation completed must be refused (a slow machine stretches each poll: both are
    # judged by the side of the poll that matters)
    before = [status for _, answered, status in polls if answered < gate_opens]
    assert done.finished_at is not None
    after = [status for sent, _, status in polls if sent > done.finished_at.timestamp()]
    # a few polls suffice to show the poller ran through the window (a slow machine polls less)
    assert len(before) >= 3 and set(before) == {200}
    assert set(after) <= {401} and world.probe(world.first["token"]) == 401


def test_a_reload_hook_is_told_the_secret_and_the_rotation_and_nothing_more(
    world: World, consumer: tuple[Consumer, Served]
) -> None:
    """concepts.md: a POST hook's body carries only `{"secret", "rotation_id"}` (never the key nor
    its fingerprint), so a consumer serving several secrets knows which one to reload."""
    c, served = consumer
    c.world = world
    configure(world, served, "{min_soak: 0s, require: [consumers], max_wait: 30s, on_timeout: hold}")
    _, done = rotate(world)
    assert done.state == "completed"
    assert c.reload_bodies == [{"secret": world.name, "rotation_id": done.id}]


def test_the_started_notification_says_what_started_the_rotation_and_why(
    world: World, consumer: tuple[Consumer, Served]
) -> None:
    c, served = consumer
    configure(world, served, "{min_soak: 0s}", consumers=False)
    _, done = rotate(world)
    started = [h for h in c.hooks if h["event"] == "started"]
    assert len(started) == 1 and started[0]["rotation_id"] == done.id
    assert started[0]["trigger"] == "manual" and started[0]["reason"] == "t"


def test_promise_6_a_step_that_outlasts_the_lease_ttl_keeps_the_lease_it_renews_meanwhile(
    world: World, consumer: tuple[Consumer, Served]
) -> None:
    """A reload hook takes three lease TTLs to answer: the lease is renewed while it runs, so the
    step's write after it goes through, the hook is called once, and the rotation completes."""
    c, served = consumer
    c.world, c.reload_takes = world, 3.0
    configure(world, served, "{min_soak: 0s, require: [consumers], max_wait: 1m, on_timeout: hold}")
    world.config.write_text(world.config.read_text().replace("lease_ttl: 10s", "lease_ttl: 1s"))
    app = world.app()
    rotation = app.db.create_rotation(
        secret=world.name, provider="bw", policy="fast", trigger="manual", reason="t", actor="t"
    )
    lost: list[str] = []
    done = app.runner("t").run(rotation.id, follow=True, on_blocked=lost.append, should_stop=lambda: bool(lost))
    assert not lost, lost
    assert done.state == "completed" and c.reloads == 1
