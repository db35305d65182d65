"""Many rotations at once (incident, offboarding): parallel, bounded per provider, each failure isolated.

A secret already in flight is escalated to the bulk policy (its gate then revokes on the incident's
deadline) rather than started twice; the audit trail records the escalation.
"""

from __future__ import annotations

import enum
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta

from rotator.app import App
from rotator.engine import requests
from rotator.engine.runner import Runner
from rotator.engine.steps import Step
from rotator.errors import RotatorError
from rotator.lifecycle import WITH_OPERATOR, State
from rotator.runtime.governor import Governor
from rotator.state.schema import Rotation


class Kind(enum.StrEnum):
    """How one secret of a bulk command came out, as its summary counts it."""

    COMPLETED = "completed"
    FAILED = "failed"
    HELD = "held"
    ERROR = "error"
    """Never recorded: the request itself failed (the note says why)."""
    WAITING = "waiting_on_a_person"
    IN_PROGRESS = "in_progress"
    NOT_STARTED = "not_started"
    """Stopped (Ctrl-C) before its rotation began."""


@dataclass(frozen=True)
class Outcome:
    secret: str
    provider: str
    rotation_id: str | None
    state: str
    """What people read: the rotation's state, `held:<state>`, `error` or `not started`."""
    note: str
    kind: Kind

    @property
    def failed_or_held(self) -> bool:
        return self.kind in (Kind.FAILED, Kind.HELD, Kind.ERROR)


def everyone(app: App) -> set[str]:
    """Every person named in a policy file: in a secret's `access` or in a people group."""
    named = {entry for spec in app.policies.secrets.values() for entry in spec.access if not entry.startswith("team:")}
    groups = [app.policies.teams, *app.policies.team_groups.values()]
    return named | {member for found in groups for members in found.values() for member in members}


def who_is(app: App, person: str) -> set[str]:
    """The people `person` stands for, as policy files write them: the same address in any case,
    or, given no `@`, every address whose part before the `@` it is (`alice` for alice@example.com)."""
    wanted = person.casefold()
    return {
        known
        for known in everyone(app)
        if known.casefold() == wanted or ("@" not in wanted and known.casefold().split("@", 1)[0] == wanted)
    }


def people_of(app: App, person: str) -> list[str]:
    """Secrets whose `access` names `person` (see who_is), directly or through a team."""
    people = {p.casefold() for p in who_is(app, person)}
    # people groups belong to a team's files: another team's group of the same name is not this one
    memberships: dict[int, set[str]] = {}

    def groups(name: str) -> set[str]:
        found = app.policies.groups_of(name)
        if id(found) not in memberships:
            memberships[id(found)] = {
                f"team:{group}" for group, members in found.items() if people & {m.casefold() for m in members}
            }
        return memberships[id(found)]

    return sorted(
        name
        for name, spec in app.policies.secrets.items()
        if people & {a.casefold() for a in spec.access} or groups(name) & set(spec.access)
    )


def rotate_many(
    app: App,
    secrets: list[str],
    *,
    policy: str,
    trigger: str,
    reason: str,
    actor: str,
    per_provider: int,
    on_step: Callable[[Step], None],
    on_done: Callable[[Outcome], None],
    stop: threading.Event | None = None,
) -> list[Outcome]:
    """Rotate every secret under `policy`; return one outcome per secret, in the order given.

    Once `stop` is set, nothing more starts and each rotation under way stops after the step in
    hand, written where it is (a daemon or `rotator rotate` takes it on)."""
    limits: dict[str, threading.Semaphore] = defaultdict(lambda: threading.Semaphore(per_provider))
    for name in secrets:
        limits[app.policies.secret(name).provider]  # create each provider's semaphore before the threads start

    per_worker = threading.local()

    def runner() -> Runner:
        # one a worker, as in the daemon: building one reads /proc for the lease owner's identity
        if not hasattr(per_worker, "runner"):
            per_worker.runner = app.runner(actor, stop)
        return per_worker.runner  # type: ignore[no-any-return]

    stopping = stop or threading.Event()
    governor = Governor()  # past the interpreter's core, more rotations at once only slow each other

    def one(name: str) -> Outcome:
        spec = app.policies.secret(name)
        with limits[spec.provider], governor.admitted(stopping):
            if stopping.is_set():
                note = "interrupted before it started"
                outcome = Outcome(name, spec.provider, None, "not started", note, Kind.NOT_STARTED)
            else:
                try:
                    rotation = _start(runner(), app, name, policy=policy, trigger=trigger, reason=reason, actor=actor)
                    final = runner().run(rotation, follow=True, on_step=on_step, should_stop=stopping.is_set)
                    outcome = _outcome(final)
                except RotatorError as exc:
                    outcome = Outcome(name, spec.provider, None, "error", str(exc), Kind.ERROR)
        on_done(outcome)
        return outcome

    workers = max(1, min(len(secrets), per_provider * max(1, len(limits))))
    app.connections = max(app.connections, workers)  # no rotation queues for a connection
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(one, secrets))


def hand_to_daemons(
    app: App,
    secrets: list[str],
    *,
    policy: str,
    trigger: str,
    reason: str,
    actor: str,
    on_step: Callable[[Step], None],
    on_done: Callable[[Outcome], None],
    poll: float = 1.0,
    stall: timedelta | None = None,
    sleep: Callable[[float], None] = time.sleep,
    stop: threading.Event | None = None,
) -> list[Outcome]:
    """Record a rotation of every secret under `policy` and let the running daemons advance them
    (every replica claims from the same queue, urgent rotations first); follow their states in the
    state database until each has settled (ended, held, or waiting on a person).

    Stops following early, the rotations staying queued for the daemons, when none of them has
    moved for `stall` (default: six daemon ticks, at least 10 s): no daemon is advancing them.
    """
    outcomes: dict[str, Outcome] = {}
    started: dict[str, Rotation] = {}
    runner = app.runner(actor, stop)  # escalates a rotation under way, under its lease; advances none
    for name in secrets:
        spec = app.policies.secret(name)
        try:
            started[name] = _start(runner, app, name, policy=policy, trigger=trigger, reason=reason, actor=actor)
        except RotatorError as exc:
            outcomes[name] = Outcome(name, spec.provider, None, "error", str(exc), Kind.ERROR)
            on_done(outcomes[name])
    stall = stall or max(timedelta(seconds=10), 6 * app.settings.daemon.tick)
    seen = {r.id: (r.state, r.updated_at) for r in started.values()}
    last_move = time.monotonic()
    following = {r.id: name for name, r in started.items()}
    # `stop` (Ctrl-C) ends only the following: the daemons go on
    while following and time.monotonic() - last_move < stall.total_seconds() and not (stop and stop.is_set()):
        if stop is not None:
            stop.wait(poll)
        else:
            sleep(poll)
        for rotation in app.db.rotations(list(following)):
            if (rotation.state, rotation.updated_at) != seen[rotation.id]:
                seen[rotation.id] = (rotation.state, rotation.updated_at)
                last_move = time.monotonic()
                on_step(Step(rotation, rotation.state))
            if _settled(rotation):
                name = following.pop(rotation.id)
                outcomes[name] = _outcome(rotation)
                on_done(outcomes[name])
    for rotation in app.db.rotations(list(following)):  # still under way (or never picked up)
        outcomes[following[rotation.id]] = _outcome(rotation)
    return [outcomes[name] for name in secrets]


def _settled(rotation: Rotation) -> bool:
    return rotation.terminal or bool(rotation.held_reason) or rotation.state in WITH_OPERATOR


def _outcome(rotation: Rotation) -> Outcome:
    note = rotation.held_reason or rotation.failed_reason or rotation.waiting_for or ""
    return Outcome(rotation.secret, rotation.provider, rotation.id, _state(rotation), note, _kind(rotation))


def _start(runner: Runner, app: App, name: str, *, policy: str, trigger: str, reason: str, actor: str) -> Rotation:
    """A rotation of `name` under `policy`: a new one, or the one under way put under it (under its
    lease, waiting for a holder's step up to the lease's TTL)."""
    spec = app.policies.secret(name)
    rotation, _ = requests.start_or_escalate(
        runner,
        secret=name,
        provider=spec.provider,
        policy=policy,
        default_policy=policy,
        trigger=trigger,
        reason=reason,
        actor=actor,
        wait=app.settings.engine.lease_ttl,
    )
    return rotation


def _state(rotation: Rotation) -> str:
    return f"held:{rotation.state}" if rotation.held_reason else rotation.state


def _kind(rotation: Rotation) -> Kind:
    if rotation.held_reason:
        return Kind.HELD
    if rotation.state == State.COMPLETED:
        return Kind.COMPLETED
    if rotation.state == State.FAILED:
        return Kind.FAILED
    return Kind.WAITING if rotation.state in WITH_OPERATOR else Kind.IN_PROGRESS
