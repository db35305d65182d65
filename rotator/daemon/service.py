"""`rotator run`: schedules policy rotations and advances rotations in flight.

APScheduler 3 only gives the timing (a tick every `daemon.tick`); the state database is the truth:
each tick advances every rotation whose time to look has come, and starts a rotation for every
secret whose policy makes it due and whose window is open. Nothing waits in a thread: a waiting
rotation is a row with a time. SIGHUP reloads rotator.yaml and the policies (a bad file is reported
and the old ones stay in force); SIGTERM lets the step under way finish and exits 0.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path

import sdnotify
from apscheduler.schedulers.background import BackgroundScheduler
from prometheus_client import generate_latest
from sqlalchemy.exc import DBAPIError
from starlette.applications import Starlette

from rotator import log
from rotator.app import App, actor_name
from rotator.daemon import endpoints, process, schedule
from rotator.daemon.agenda import Agenda, figures
from rotator.daemon.announcements import announce
from rotator.daemon.liveness import Liveness
from rotator.daemon.metrics import StateCollector, per_secret, registry
from rotator.daemon.planning import DISCOVERY_BATCH, Planner
from rotator.daemon.replicas import Replicas
from rotator.durations import render
from rotator.engine import requests
from rotator.engine.steps import Step
from rotator.errors import InputError, LeaseHeld, RotatorError, StateBusy
from rotator.lifecycle import WITH_OPERATOR
from rotator.runtime import ratelimit
from rotator.runtime.background_http import serve_app
from rotator.runtime.governor import Governor
from rotator.state.clock import utcnow

_log = log.get(__name__)


class Daemon:
    def __init__(self, config_path: Path | None, policies_dir: Path | None, app: App) -> None:
        self.config_path = config_path
        self.policies_dir = policies_dir
        self.app = app
        self.actor = actor_name("daemon")
        self.stopping = threading.Event()
        self.reload_requested = threading.Event()
        self.last_tick_wall: float | None = None
        self.ready = False
        self.db_problem: str | None = None
        self.planner = Planner(app)
        self.agenda = self._agenda(app)
        self._discovered: list[str] = []
        """Secrets whose stored ages discovery found since the last tick."""
        self._discovered_lock = threading.Lock()
        self.discovery_left = 0
        """Secrets whose age is still to be read from their store."""
        self._rediscover = threading.Event()
        """Set by a reload (new secrets, a new planner) and at the stop: discovery looks at once."""
        self._ticked = threading.Event()
        """Set after the first tick, whatever its end (and at the stop): discovery waits for it, so
        that it does not take the interpreter from the tick that makes the daemon ready."""
        self._announced: set[tuple[str, datetime]] = set()
        self.notifier = sdnotify.SystemdNotifier()
        self.watchdog_every = process.watchdog_interval()
        engine = app.settings.engine
        self.liveness = Liveness(
            step_deadline=engine.step_deadline.total_seconds(),
            probe_bound=max(engine.lease_ttl.total_seconds(), PROBE_BOUND),
            loop_bound=LOOP_BOUND,
        )
        self.replicas = Replicas()
        self.governor = Governor()  # daemon.workers past the interpreter's core only slow each other
        collector = StateCollector(
            lambda: self.app.db,
            utcnow,
            lambda: self.app.notifier.failures,
            lambda: self.last_tick_wall,
            lambda: self.discovery_left,
        )
        self.registry, self.step_seconds = registry(collector)

    # the service ----------------------------------------------------------------------------------

    def run(self) -> int:
        settings = self.app.settings.daemon
        host, _, port = settings.listen.rpartition(":")
        try:
            served = serve_app(
                self.http_app(), host=host.strip("[]") or "127.0.0.1", port=int(port), name="rotator-http"
            )
        except OSError as exc:
            raise InputError([f"daemon.listen {settings.listen}: {endpoints.cannot_listen(exc)}"]) from None
        scheduler = BackgroundScheduler(timezone="UTC", job_defaults={"coalesce": True, "max_instances": 1})
        scheduler.add_job(self.tick, "interval", seconds=settings.tick.total_seconds(), next_run_time=datetime.now())
        self.app.notifier.start()  # delivers what earlier runs left in the outbox, too
        discovery = threading.Thread(target=self._discover, name="discovery", daemon=True)
        discovery.start()
        signal.signal(signal.SIGTERM, lambda *_: self.stopping.set())
        signal.signal(signal.SIGINT, lambda *_: self.stopping.set())
        signal.signal(signal.SIGHUP, lambda *_: self.reload_requested.set())
        self.replicas.join()
        ratelimit.end_waits_with(self.stopping)  # a stop sends nothing more that waits on a limit
        with contextlib.suppress(DBAPIError, StateBusy):  # a database down at start: the probe says so
            self.replicas.beat(self.app.db)
            self.ready = True  # the database answers: ready within seconds, however long the first tick
        prober = threading.Thread(target=self._probe, name="db-probe", daemon=True)
        prober.start()
        scheduler.start()
        _log.info(
            "daemon.started", listen=served.url, tick=render(settings.tick), secrets=len(self.app.policies.secrets)
        )
        self.notifier.notify("READY=1")
        self._serve_until_stopped()
        self.notifier.notify("STOPPING=1")
        _log.info("daemon.stopping")
        scheduler.shutdown(wait=True)  # the tick under way finishes its current steps
        self._ticked.set()
        self._rediscover.set()
        discovery.join(timeout=10)
        with contextlib.suppress(DBAPIError):
            self.replicas.leave(self.app.db)
        ratelimit.end_waits_with(None)
        self.app.close()
        served.stop()
        _log.info("daemon.stopped")
        return 0

    def _serve_until_stopped(self) -> None:
        """The main loop: it does nothing that can wait on the database or the work (the probe
        and the ticks have threads of their own), so its watchdog pings say it is alive."""
        while not self.stopping.wait(self.watchdog_every):
            self.liveness.beat()
            if self.reload_requested.is_set():
                self.reload_requested.clear()
                self.reload()
            if self.healthy():
                self.notifier.notify("WATCHDOG=1")

    def _probe(self) -> None:
        """Every few seconds: the heartbeat (which counts the replicas) doubles as a probe of the
        state database; every few probes, what is in flight goes to systemd's STATUS."""
        probes = 0
        while not self.stopping.wait(PROBE_EVERY):
            probes += 1
            try:
                with self.liveness.probing():
                    self.replicas.beat(self.app.db)
                    active = self.app.db.active() if probes % STATUS_EVERY == 1 else None
            except StateBusy:
                continue  # the database answered: only a lock was held too long
            except DBAPIError as exc:
                self.db_problem = f"state database unreachable: {type(exc.orig or exc).__name__}"
                self.ready = False
                self.notifier.notify(f"STATUS={self.db_problem}")
                continue
            if self.db_problem is not None:
                _log.info("state.reachable_again")
            self.db_problem, self.ready = None, True
            if active is not None:
                waiting = sum(1 for r in active if r.state in WITH_OPERATOR)
                self.notifier.notify(
                    f"STATUS={len(active)} rotations in flight, {waiting} waiting on a person, "
                    f"{self.replicas.alive} replica{'s' if self.replicas.alive != 1 else ''}"
                )

    def reload(self) -> None:
        """Read rotator.yaml and the policies again; keep the old ones if anything is wrong."""
        try:
            fresh = App.load(self.config_path, self.policies_dir)
        except InputError as exc:
            _log.error("policies.reload_failed", problems=exc.problems, kept="previous policies stay in force")
            return
        planner = Planner(fresh, earlier=self.planner)
        old, self.app, self.planner = self.app, fresh, planner
        self.agenda = self._agenda(fresh)  # removed secrets leave /metrics at once, not a tick later
        self._rediscover.set()
        process.give_back_memory()
        fresh.notifier.start()
        old.notifier.stop()
        old.db.close()
        _log.info("policies.reloaded", secrets=len(fresh.policies.secrets))

    def healthy(self) -> bool:
        """Alive (daemon/liveness.py): the loop turns, the database client is not hung, no step is stuck."""
        return self.liveness.problem() is None

    # one tick ---------------------------------------------------------------------------------------

    def tick(self) -> None:
        app, started = self.app, time.perf_counter()
        try:
            self._start_due(app)
            due_by, handled = app.db.clock(), set[str]()
            limits = {name: p.max_concurrent for name, p in app.settings.providers.items() if p.max_concurrent}
            with ThreadPoolExecutor(max_workers=app.settings.daemon.workers) as pool:
                workers = [
                    pool.submit(self._work, app, due_by, limits, handled) for _ in range(app.settings.daemon.workers)
                ]
                for worker in workers:
                    worker.result()  # a database error ends the tick below
            self.agenda.refresh(utcnow())  # what ended in this tick shows in /metrics at once
            if self.db_problem is not None:
                _log.info("state.reachable_again")
            self.db_problem = None
            self.ready = True
            self.last_tick_wall = time.time()
            _log.debug("tick.done", ms=round((time.perf_counter() - started) * 1000, 1))
        except DBAPIError as exc:
            # the database is away (restart, failover, network): stay up, say so, try next tick
            self.db_problem = (
                f"state database unreachable: {type(exc.orig).__name__ if exc.orig else type(exc).__name__}"
            )
            self.ready = False
            _log.error("state.unreachable", error=self.db_problem, retry_in=str(app.settings.daemon.tick))
        except RotatorError as exc:
            _log.error("tick.failed", error=str(exc))
        finally:
            if not self._ticked.is_set():
                process.give_back_memory()  # what reading the policies and planning the whole fleet left free
                self._ticked.set()

    def _work(self, app: App, due_by: datetime, limits: dict[str, int], handled: set[str]) -> None:
        """One worker of a tick: claim the most urgent due rotation nobody holds, advance it, again,
        until none is left (replicas claim from the same queue, so they split the work); each
        rotation at most once per tick here, so one that cannot move does not spin."""
        runner = app.runner(self.actor)
        while not self.stopping.is_set():
            try:
                with self.governor.admitted(self.stopping):
                    advanced = runner.advance_next(
                        due_by=due_by,
                        urgent=URGENT,
                        limits=limits,
                        handled=handled,
                        on_step=self._observe,
                        on_begin=lambda _: self.liveness.step_began(),
                        should_stop=self.stopping.is_set,
                    )
            except LeaseHeld:
                continue  # lost to another replica mid-step (LeaseLost), or a lock held too long
            except RotatorError as exc:
                _log.error("rotation.advance_failed", error=str(exc))
                continue
            finally:
                self.liveness.step_ended()
            if advanced is None:
                return

    def _observe(self, step: Step) -> None:
        self.liveness.step_ended()
        if step.step:
            self.step_seconds.labels(step=step.step).observe(step.seconds)

    def _discover(self) -> None:
        """Read the stored ages of secrets never rotated here, in bulk, beside the ticks: the daemon
        is ready at once, and each batch found is planned at the next tick. Looks again every
        minute for secrets added by a reload or left by a store that could not be read."""
        self._ticked.wait()
        while not self.stopping.is_set():
            try:
                settled = self._discover_once()
            except (DBAPIError, RotatorError) as exc:  # the database or a store away: next round
                _log.warning("discovery.failed", error=str(exc))
                settled = False
            self._rediscover.wait(60.0 if settled else 5.0)
            self._rediscover.clear()

    def _discover_once(self) -> bool:
        """One round over the secrets whose ages are unknown; True when none is left."""
        planner = self.planner
        left = planner.undiscovered()
        self.discovery_left = len(left)
        for start in range(0, len(left), DISCOVERY_BATCH):
            if self.stopping.is_set() or planner is not self.planner:
                break
            found = planner.discover(left[start : start + DISCOVERY_BATCH])
            with self._discovered_lock:
                self._discovered.extend(found)
            self.discovery_left -= len(found)
        if self.discovery_left == 0 and left:
            _log.info("discovery.done", secrets=len(left))
        return self.discovery_left == 0

    def _agenda(self, app: App) -> Agenda:
        return Agenda(self.planner, notify_before=lambda policy: app.policies.policies[policy].notify_before)

    def _start_due(self, app: App) -> None:
        now, agenda = utcnow(), self.agenda
        with self._discovered_lock:
            found, self._discovered = self._discovered, []
        try:
            came = agenda.due(now, replan=found, most=STARTS_PER_TICK)
        except BaseException:
            with self._discovered_lock:  # ages just read, planned at the next tick rather than never
                self._discovered[:0] = found
            raise
        for index, p in enumerate(came):
            try:
                self._start_one(app, agenda, p, now)
            except BaseException:
                for left in came[index:]:  # the database failed mid-way: none is lost, all come next tick
                    agenda.again(left, now, now)
                raise

    def _start_one(self, app: App, agenda: Agenda, p: schedule.Plan, now: datetime) -> None:
        """Announce, start or put back on the tick's agenda (always, with the moment to look again) one
        plan (a reload meanwhile makes a new agenda, which plans every secret afresh)."""
        announce(app, p, now, self._announced)
        if self.stopping.is_set():
            return agenda.again(p, now, now)
        if not p.startable(now):
            return agenda.again(p, now)  # announced: its start is next
        if app.db.active_for(p.secret) is not None:
            return agenda.again(p, now, now + RECHECK)  # its end brings it back sooner (Agenda.due)
        failed, last = app.db.failures_since_success(p.secret)
        if failed and last is not None:
            # a secret whose rotations keep failing is tried again later and later, not every tick;
            # the last end is on the state database's clock, which this host's may be off from
            backoff = min(app.settings.engine.hold_interval * 2 ** min(failed - 1, 8), timedelta(days=1))
            wait = last + backoff - app.db.clock()
            if wait > timedelta(0):
                return agenda.again(p, now, now + wait)
        if app.db.completed_since(p.secret, p.last_rotated):
            # completed (here or by a replica) since it was planned
            return agenda.again(p, now, now + app.settings.daemon.tick)
        spec = app.policies.secret(p.secret)
        agenda.again(p, now, now + RECHECK)
        rotation = requests.start(
            app.db,
            secret=spec.name,
            provider=spec.provider,
            policy=spec.policy,
            trigger="policy",
            reason=p.why,
            actor=self.actor,
        )
        if rotation is not None:  # None: started elsewhere a moment ago
            _log.info("rotation.scheduled", rotation_id=rotation.id, secret=spec.name, why=p.why)

    def scrape(self) -> Iterator[bytes]:
        """What /metrics answers, in pieces."""
        yield generate_latest(self.registry)
        agenda = self.agenda
        if agenda.started:  # a scrape must not plan the whole fleet again: the agenda's figures
            yield from per_secret(agenda.figures, utcnow())
        else:  # before the first tick: planned now
            plans = self.planner.plans(discover=False)
            yield from per_secret(lambda: map(figures, plans), utcnow())

    def http_app(self) -> Starlette:
        """/healthz, /readyz and /metrics of this daemon (daemon/endpoints.py)."""
        return endpoints.app(
            problem=self.liveness.problem,
            readiness=lambda: (self.ready, self.db_problem),
            scrape=self.scrape,
        )


PROBE_EVERY = 2.0
"""Seconds between probes of the state database (each one the replica's heartbeat)."""
STATUS_EVERY = 3  # probes between two STATUS lines to systemd
PROBE_BOUND = 10.0
"""Seconds a probe may take, at least (engine.lease_ttl when longer), before the client counts as hung."""
LOOP_BOUND = 30.0
"""Seconds the main loop may go without turning (a reload of a very large fleet) before /healthz fails."""
URGENT = frozenset({"incident", "offboarding"})
"""Triggers (and the bulk commands' policies, which an escalated rotation takes on) whose rotations
each tick advances first, so a backlog of scheduled rotations never delays them."""
STARTS_PER_TICK = 100
"""Secrets whose moment came that a tick looks at, earliest first (and so scheduled rotations it
records) at most: thousands due at once (a fleet's first quarter) become work over several ticks,
each short, and the workers, which take incidents and offboardings first, start within a tick of
an incident however large the backlog."""
RECHECK = timedelta(minutes=15)
"""A secret with a rotation in flight is looked at again after this long at the latest; its
rotation's end brings it back at the next tick."""
