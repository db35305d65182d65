"""What the commands share: loading rotator, finding a rotation, acting under its lease, Ctrl-C.

Nothing here imports the engine or the state database at import time: `rotator --help`, `--version`
and shell completion load only this package and click."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

import click

from rotator.cli.exit import Exit
from rotator.errors import InputError, KeyRejected, LeaseHeld, RotatorError
from rotator.runtime import ratelimit

if TYPE_CHECKING:
    from rotator.app import App
    from rotator.engine.steps import Rotation


def load_app(ctx: click.Context, *, daemon: bool = False) -> App:
    """rotator.yaml and the policy files, or exit 2 listing every problem; logging set up as they say.

    At a terminal a command prints what it does itself (each step, a live table), so its logs start
    at warnings there unless --log-level asks for more; the daemon logs what log.level says."""
    from rotator import log
    from rotator.app import App

    try:
        app = App.load(ctx.obj["config"], ctx.obj["policies"])
    except InputError as exc:
        for problem in exc.problems:
            click.echo(log.redact(problem), err=True)  # a key pasted in the wrong place is not repeated
        ctx.exit(Exit.INPUT)
    if not daemon:
        app.on_new_database = lambda where: click.echo(
            f"note: made a new, empty state database ({where}): it knows no earlier rotation. If a daemon "
            "runs on this host, it uses another one: run this as the daemon's user, with its rotator.yaml",
            err=True,
        )
    fmt = app.settings.log.format
    if fmt == "auto":
        fmt = "console" if sys.stderr.isatty() else "json"
    level = ctx.obj["log_level"] or app.settings.log.level
    if not daemon and ctx.obj["log_level"] is None and sys.stderr.isatty() and level in ("debug", "info"):
        level = "warning"
    log.configure(level=level, fmt=fmt)
    ctx.call_on_close(app.close)
    return app


def actor_name(kind: str = "cli") -> str:
    """Who acts, for the audit trail (rotator.app.actor_name, imported when a command runs)."""
    from rotator.app import actor_name as name

    return name(kind)


def require_secrets(ctx: click.Context, app: App, names: Iterable[str]) -> None:
    """Exit with Exit.INPUT, before anything runs, if a name is not a secret of the policies."""
    for name in names:
        try:
            app.policies.secret(name)
        except InputError as exc:
            click.echo(exc.problems[0], err=True)
            ctx.exit(Exit.INPUT)


def preflight_or_exit(ctx: click.Context, app: App, secrets: list[str]) -> None:
    """Exit with Exit.INPUT, before any rotation is recorded, when a credential or permission is
    wrong; a temporary failure (unreachable) is only reported: the rotation's retries may ride it out."""
    from rotator.operations import preflight

    checks = preflight.run(app, secrets, writes=False)
    failed = [c for c in checks if not c.ok]
    for check in failed:
        click.echo(f"{'warning' if check.temporary else 'error'}: {check.item}: {check.detail}", err=True)
    if any(not c.temporary for c in failed):
        click.echo("nothing was changed; fix the above (`rotator check` shows every permission)", err=True)
        ctx.exit(Exit.INPUT)


def read_hidden(prompt: str) -> str:
    """A secret from a hidden prompt on a terminal, else one line of stdin: never argv or the environment."""
    if sys.stdin is None:  # started with stdin closed (`<&-`): nothing to read
        return ""
    raw = click.prompt(prompt, hide_input=True) if sys.stdin.isatty() else sys.stdin.readline()
    return str(raw).strip()


@contextlib.contextmanager
def ctrl_c_stops() -> Iterator[threading.Event]:
    """The first Ctrl-C (or SIGTERM: `timeout`, a CI's cancel, a container's stop) sets the event:
    a command finishes the step in hand, writes it and stops (a step cut in the middle is a crash
    to recover from, not a way to stop), sending nothing that still waits on a rate limit; a
    second one quits at once."""
    stop = threading.Event()

    def on_sigint(signum: int, frame: Any) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        click.echo("stopping after the step in hand (Ctrl-C again to quit at once)", err=True)

    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = signal.signal(signal.SIGINT, on_sigint), signal.signal(signal.SIGTERM, on_sigint)
    ratelimit.end_waits_with(stop)
    try:
        yield stop
    finally:
        ratelimit.end_waits_with(None)
        signal.signal(signal.SIGINT, previous[0])
        signal.signal(signal.SIGTERM, previous[1])


SHORTEST_ID = 4
"""The fewest characters of a rotation id a command takes (commands print eight)."""


def find_rotation(ctx: click.Context, app: App, rotation_id: str) -> Rotation:
    """A rotation by its id or a unique prefix of it (`[ff03204a]` as printed)."""
    rotation = app.db.find(rotation_id)
    if rotation is None and len(rotation_id) >= SHORTEST_ID:
        ids = app.db.ids_starting(rotation_id)
        if len(ids) > 1:
            click.echo(f"{rotation_id!r} starts several rotation ids ({', '.join(ids)}…); give more of it", err=True)
            ctx.exit(Exit.INPUT)
        rotation = app.db.find(ids[0]) if ids else None
    if rotation is None:
        from rotator.log import redact
        from rotator.settings.policies import PASTED_KEY

        said = PASTED_KEY if redact(rotation_id) != rotation_id else f"no rotation with id {rotation_id!r}"
        click.echo(f"{said} (`rotator status` lists those in flight)", err=True)
        ctx.exit(Exit.INPUT)
    assert rotation is not None
    return rotation


def under_lease(
    ctx: click.Context,
    app: App,
    rotation: Rotation,
    act: Callable[[Any, Rotation], Rotation],
    kind: str = "cli",
    *,
    still_waiting: str | None = None,
) -> tuple[Any, Rotation]:
    """Run a person's action on a rotation while holding its secret's lease. KeyRejected passes through.

    `still_waiting`: what the rotation still waits for when a temporary error (a provider that did
    not answer) stopped the action — said, with exit 4, instead of exit 1 "failed"."""

    runner = app.runner(actor_name(kind))
    try:
        rotation = runner.act(rotation, lambda r: act(runner.engine, r))
    except KeyRejected:
        raise
    except LeaseHeld as exc:
        click.echo(str(exc), err=True)
        ctx.exit(Exit.LOCKED)
    except RotatorError as exc:
        if exc.temporary and still_waiting is not None:
            click.echo(f"{exc}; nothing was changed: {still_waiting}", err=True)
            ctx.exit(Exit.OPERATOR)
        # temporary (provider unreachable): try again later; otherwise the request itself was wrong
        click.echo(f"{exc}{'; try again' if exc.temporary else ''}", err=True)
        ctx.exit(Exit.FAILED if exc.temporary else Exit.INPUT)
    return runner, rotation
