"""The `rotator` command. Thin: parse, call the engine, print.

Exit codes: 0 completed / ok, 1 failed, 2 bad input, 3 still in progress (waiting on time),
4 waiting on an operator, 5 held (needs a person's attention), 6 another process holds the secret.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import click

from rotator import hardening, log
from rotator.app import App, actor_name
from rotator.cli import state as state_commands
from rotator.cli.exit import Exit
from rotator.config import transport_warnings
from rotator.engine import interventions
from rotator.engine.steps import Step
from rotator.errors import ActiveRotationExists, InputError, KeyRejected, LeaseHeld, RotatorError, SchemaMismatch
from rotator.lifecycle import WITH_OPERATOR, State
from rotator.state.db import utcnow
from rotator.state.schema import Rotation

F = TypeVar("F", bound=Callable[..., Any])


def _load(ctx: click.Context) -> App:
    try:
        app = App.load(ctx.obj["config"], ctx.obj["policies"])
    except InputError as exc:
        for problem in exc.problems:
            click.echo(problem, err=True)
        ctx.exit(Exit.INPUT)
    fmt = app.settings.log.format
    if fmt == "auto":
        fmt = "console" if sys.stderr.isatty() else "json"
    log.configure(level=ctx.obj["log_level"] or app.settings.log.level, fmt=fmt)
    ctx.call_on_close(app.close)
    return app


class _Commands(click.Group):
    """Errors no command handled become one line and an exit code, never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (InputError, SchemaMismatch) as exc:
            click.echo(str(exc), err=True)
            ctx.exit(Exit.INPUT)
        except RotatorError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(Exit.FAILED)
        except OSError as exc:
            # a file, a socket, a directory the system refused: what and why, not a traceback
            where = f" ({exc.filename})" if exc.filename else ""
            click.echo(f"error: {exc.strerror or type(exc).__name__}{where}", err=True)
            ctx.exit(Exit.FAILED)


@click.group(cls=_Commands)
@click.option(
    "--config",
    "config",
    type=click.Path(path_type=Path),
    help="rotator.yaml (default: $ROTATOR_CONFIG, ./rotator.yaml, /etc/rotator/rotator.yaml, else embedded defaults)",
)
@click.option("--policies", "policies", type=click.Path(path_type=Path), help="policy directory (overrides config)")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default=None)
@click.version_option(package_name="rotator", prog_name="rotator")
@click.pass_context
def main(ctx: click.Context, config: Path | None, policies: Path | None, log_level: str | None) -> None:
    """Rotate SaaS API keys without downtime.

    \b
    Exit codes:
      0  completed / ok
      1  failed (rolled back), a check failed, or orphans found
      2  bad input or misconfiguration (nothing was changed)
      3  still in progress (waiting on time; a later run or the daemon continues)
      4  waiting on an operator (rotator supply / revoke in the dashboard)
      5  held: needs a person's attention
      6  another process holds the secret's lease
    """
    hardening.harden()
    ctx.obj = {"config": config, "policies": policies, "log_level": log_level}
    log.configure(level=log_level or "warning")


def _require_secrets(ctx: click.Context, app: App, names: Iterable[str]) -> None:
    """Exit with Exit.INPUT, before anything runs, if a name is not a secret of the policies."""
    for name in names:
        try:
            app.policies.secret(name)
        except InputError as exc:
            click.echo(exc.problems[0], err=True)
            ctx.exit(Exit.INPUT)


def _preflight(ctx: click.Context, app: App, secrets: list[str]) -> None:
    """Exit with Exit.INPUT, before any rotation is recorded, when a credential or permission is
    wrong; a temporary failure (unreachable) is only reported: the rotation's retries may ride it out."""
    from rotator import preflight

    checks = preflight.run(app, secrets, writes=False)
    failed = [c for c in checks if not c.ok]
    for check in failed:
        click.echo(f"{'warning' if check.temporary else 'error'}: {check.item}: {check.detail}", err=True)
    if any(not c.temporary for c in failed):
        click.echo("nothing was changed; fix the above (`rotator check` shows every permission)", err=True)
        ctx.exit(Exit.INPUT)


def _print_step(rotation: Rotation) -> Callable[[Step], None]:
    last = {"state": "", "note": ""}

    def show(step: Step) -> None:
        r = step.rotation
        if r.state == last["state"] and step.note == last["note"]:
            return
        when = utcnow().strftime("%H:%M:%S")
        suffix = f" — {step.note}" if step.note and step.note != r.state else ""
        click.echo(f"{when} {r.secret} [{r.id[:8]}] {r.state}{suffix}")
        last.update(state=r.state, note=step.note)

    return show


def _print_blocked(secret: str) -> Callable[[str], None]:
    return lambda why: click.echo(f"{secret}: waiting: {why}", err=True)


def _outcome(rotation: Rotation) -> Exit:
    if rotation.state == State.COMPLETED:
        new = f"{rotation.new_key_id} ({rotation.new_fingerprint})" if rotation.new_key_id else rotation.new_fingerprint
        old = rotation.old_key_id or rotation.old_fingerprint
        click.echo(
            f"rotation {rotation.id} of {rotation.secret} completed: new key {new} is current; "
            f"old key {old} revoked and refused"
        )
        return Exit.OK
    if rotation.state == State.FAILED:
        old_key = rotation.old_key_id or rotation.old_fingerprint
        click.echo(
            f"rotation {rotation.id} of {rotation.secret} failed and was rolled back: {rotation.failed_reason}; "
            f"the old key{' ' + old_key if old_key else ''} is still current"
        )
        return Exit.FAILED
    if rotation.held_reason:
        click.echo(f"rotation {rotation.id} of {rotation.secret} is HELD in {rotation.state}: {rotation.held_reason}")
        return Exit.HELD
    if rotation.state in WITH_OPERATOR:
        click.echo(f"rotation {rotation.id} of {rotation.secret} waits on an operator ({rotation.state}):")
        click.echo(f"  {rotation.waiting_for.removeprefix('operator: ')}")
        return Exit.OPERATOR
    click.echo(
        f"rotation {rotation.id} of {rotation.secret} is in progress ({rotation.state}: "
        f"{rotation.waiting_for}); next look at {rotation.next_attempt_at.isoformat(timespec='seconds')}"
    )
    return Exit.IN_PROGRESS


@main.command()
@click.argument("secrets", nargs=-1, required=True)
@click.option("--policy", help="rotate under this policy instead of the secret's own (e.g. incident)")
@click.option("--reason", default="", help="why: recorded in the audit trail")
@click.option(
    "--detach",
    is_flag=True,
    help="return as soon as the rotation has to wait; a later run or the daemon continues it",
)
@click.pass_context
def rotate(ctx: click.Context, secrets: tuple[str, ...], policy: str | None, reason: str, detach: bool) -> None:
    """Rotate SECRETS now (or resume their rotations in flight), printing each step."""
    app = _load(ctx)
    actor = actor_name()
    _require_secrets(ctx, app, secrets)
    if policy is not None and policy not in app.policies.policies:
        click.echo(f"unknown policy {policy!r} (known: {', '.join(sorted(app.policies.policies))})", err=True)
        ctx.exit(Exit.INPUT)
    _preflight(ctx, app, list(secrets))
    runner = app.runner(actor)
    codes: list[Exit] = []
    for name in secrets:
        spec = app.policies.secret(name)
        try:
            rotation = app.db.create_rotation(
                secret=name,
                provider=spec.provider,
                policy=policy or spec.policy,
                trigger="manual",
                reason=reason,
                actor=actor,
            )
            click.echo(f"{name}: rotation {rotation.id} requested (policy {rotation.policy})")
        except ActiveRotationExists as exc:
            # a person asked for it now: look at once (every step re-checks the world before acting)
            rotation = app.db.update(exc.rotation, actor=actor, next_attempt_at=app.db.clock())
            click.echo(f"{name}: resuming rotation {rotation.id} in state {rotation.state}")
        try:
            with _ctrl_c_stops() as stop:
                runner.sleep = stop.wait
                final = runner.run(
                    rotation.id,
                    follow=not detach,
                    on_step=_print_step(rotation),
                    on_blocked=_print_blocked(name),
                    should_stop=stop.is_set,
                )
            if stop.is_set() and not final.terminal:
                # Ctrl-C detaches: the step in hand was finished and written, the lease let go
                click.echo(
                    f"{name}: interrupted; rotation {rotation.id[:8]} stays recorded in state {final.state} "
                    f"(`rotator status {name}`); a daemon or `rotator rotate {name}` goes on with it",
                    err=True,
                )
                ctx.exit(Exit.IN_PROGRESS)
        except LeaseHeld as exc:
            click.echo(str(exc), err=True)
            codes.append(Exit.LOCKED)
            continue

        codes.append(_outcome(final))
    ctx.exit(max(codes))


@main.command()
@click.argument("secret", required=False)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="one JSON document on stdout: each secret, its key age, next due and rotation",
)
@click.pass_context
def status(ctx: click.Context, secret: str | None, as_json: bool) -> None:
    """Every secret: key age, next due date, and the rotation in flight with what it waits for."""
    from rotator.views import status_rows

    app = _load(ctx)
    if secret is not None:
        app.policies.secret(secret)  # an unknown name is bad input (exit 2), not an empty table
    rows = status_rows(app, secret)
    if as_json:
        click.echo(json.dumps({"secrets": rows}, indent=2))
        return
    waiting = [r for r in rows if r["rotation"] and r["rotation"]["operator_action"]]
    if waiting:
        click.echo("waiting on a person:")
        for row in waiting:
            rot = row["rotation"]
            click.echo(f"  {row['secret']} [{rot['id']}] {rot['state']} since {rot['since']}: {rot['waiting_for']}")
        click.echo("")
    if rows:
        click.echo(f"{'SECRET':30} {'PROVIDER':18} {'KEY AGE':>14}  {'NEXT DUE':29} ROTATION")
    for row in rows:
        rot = row["rotation"]
        doing = (
            "idle"
            if rot is None
            else f"{rot['state']} ({(rot['held'] and 'HELD: ' + rot['held']) or rot['waiting_for'] or 'running'})"
        )
        age = f"{row['age_days']}d" if row["age_days"] is not None else "never rotated"
        click.echo(f"{row['secret']:30} {row['provider']:18} {age:>14}  due {row['next_due'] or '-':25} {doing}")
        for kept in row["left_alive"]:
            name = kept["key_id"] or kept["fingerprint"]
            click.echo(f"  ! key {name} left alive since {kept['since']}: {kept['why']} (#{kept['id']})")


@main.command()
@click.argument("rotation_id")
@click.pass_context
def supply(ctx: click.Context, rotation_id: str) -> None:
    """Hand over a key made in a dashboard for ROTATION_ID; read from stdin or a hidden prompt, never argv.

    The key is checked (format, the provider accepts it, same account as the old key) before it is
    stored; a rejected key leaves the rotation waiting.
    """
    from rotator.keys import secret as wrap

    app = _load(ctx)
    rotation = _find(ctx, app, rotation_id)
    key = wrap(_read_hidden(f"new {rotation.provider} key for {rotation.secret}"))  # read before taking the lease
    try:
        runner, rotation = _under_lease(ctx, app, rotation, lambda engine, r: engine.supply(r, key), "operator")
    except KeyRejected as exc:
        click.echo(f"key rejected — {exc}; rotation {rotation_id} still waits for a key", err=True)
        ctx.exit(Exit.INPUT)
    click.echo(f"{rotation.secret}: key accepted ({rotation.new_fingerprint}); continuing rotation {rotation.id}")
    final = runner.run(
        rotation.id, follow=True, on_step=_print_step(rotation), on_blocked=_print_blocked(rotation.secret)
    )
    ctx.exit(_outcome(final))


def _read_hidden(prompt: str) -> str:
    """A secret from a hidden prompt on a terminal, else one line of stdin: never argv or the environment."""
    raw = click.prompt(prompt, hide_input=True) if sys.stdin.isatty() else sys.stdin.readline()
    return str(raw).strip()


@contextlib.contextmanager
def _ctrl_c_stops() -> Iterator[threading.Event]:
    """The first Ctrl-C sets the event: a command finishes the step in hand, writes it and stops
    (a step cut in the middle is a crash to recover from, not a way to stop); a second Ctrl-C
    quits at once."""
    stop = threading.Event()

    def on_sigint(signum: int, frame: Any) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        click.echo("stopping after the step in hand (Ctrl-C again to quit at once)", err=True)

    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)


EXIT_INTERRUPTED = 130
"""Ctrl-C before anything was started: the shell's convention (128 + SIGINT)."""

SHORTEST_ID = 4
"""The fewest characters of a rotation id a command takes (commands print eight)."""


def _find(ctx: click.Context, app: App, rotation_id: str) -> Rotation:
    """A rotation by its id or a unique prefix of it (`[ff03204a]` as printed)."""
    rotation = app.db.find(rotation_id)
    if rotation is None and len(rotation_id) >= SHORTEST_ID:
        ids = app.db.ids_starting(rotation_id)
        if len(ids) > 1:
            click.echo(f"{rotation_id!r} starts several rotation ids ({', '.join(ids)}…); give more of it", err=True)
            ctx.exit(Exit.INPUT)
        rotation = app.db.find(ids[0]) if ids else None
    if rotation is None:
        click.echo(f"no rotation with id {rotation_id!r} (`rotator status` lists those in flight)", err=True)
        ctx.exit(Exit.INPUT)
    assert rotation is not None
    return rotation


def _under_lease(
    ctx: click.Context, app: App, rotation: Rotation, act: Callable[[Any, Rotation], Rotation], kind: str = "cli"
) -> tuple[Any, Rotation]:
    """Run a person's action on a rotation while holding its secret's lease. KeyRejected passes through."""

    runner = app.runner(actor_name(kind))
    try:
        rotation = runner.act(rotation, lambda r: act(runner.engine, r))
    except KeyRejected:
        raise
    except LeaseHeld as exc:
        click.echo(str(exc), err=True)
        ctx.exit(Exit.LOCKED)
    except RotatorError as exc:
        # temporary (provider unreachable): try again later; otherwise the request itself was wrong
        click.echo(f"{exc}{'; try again' if exc.temporary else ''}", err=True)
        ctx.exit(Exit.FAILED if exc.temporary else Exit.INPUT)
    return runner, rotation


@main.command()
@click.argument("rotation_id")
@click.option("--reason", default="released by hand", help="why: recorded in the audit trail")
@click.pass_context
def release(ctx: click.Context, rotation_id: str, reason: str) -> None:
    """Open the cutover gate of ROTATION_ID by hand: revoke the old key now, then verify it is dead."""
    app = _load(ctx)
    runner, rotation = _under_lease(
        ctx, app, _find(ctx, app, rotation_id), lambda e, r: interventions.release(e, r, why=reason)
    )
    click.echo(f"{rotation.secret}: gate released by hand; revoking the old key")
    final = runner.run(
        rotation.id, follow=True, on_step=_print_step(rotation), on_blocked=_print_blocked(rotation.secret)
    )
    ctx.exit(_outcome(final))


@main.command()
@click.argument("rotation_id")
@click.option("--reason", required=True, help="why: recorded in the audit trail")
@click.pass_context
def abort(ctx: click.Context, rotation_id: str, reason: str) -> None:
    """Stop ROTATION_ID: before promotion it rolls back; at the gate the new key stays and the old one lives on."""
    app = _load(ctx)
    runner, rotation = _under_lease(
        ctx, app, _find(ctx, app, rotation_id), lambda e, r: interventions.abort(e, r, why=reason)
    )
    final = runner.run(
        rotation.id, follow=True, on_step=_print_step(rotation), on_blocked=_print_blocked(rotation.secret)
    )
    click.echo(f"rotation {final.id} of {final.secret} aborted ({final.state}): {final.failed_reason}")
    ctx.exit(Exit.OK)


@main.command()
@click.argument("secret")
@click.option("--reason", required=True, help="how you checked the key: recorded in the audit trail")
@click.pass_context
def adopt(ctx: click.Context, secret: str, reason: str) -> None:
    """Vouch that SECRET's stored api_key is the provider key its key_id names (after checking it by hand).

    Needed once for a secret rotator did not create and whose provider offers no way to prove it;
    the next rotation may then revoke that key id. Recorded with your name in the audit trail.
    """
    from rotator.engine.proof import ADOPTED
    from rotator.errors import KeyRefused

    app = _load(ctx)
    _require_secrets(ctx, app, [secret])
    spec = app.policies.secret(secret)
    current = app.store(spec.store.instance).read_current(location=spec.store.location)
    if current is None or current.value.key_id is None:
        click.echo(f"{spec.store.location}: no current value with a key_id to adopt", err=True)
        ctx.exit(Exit.INPUT)
    assert current is not None
    try:
        app.provider_for(spec).probe(key=current.value.api_key)
    except KeyRefused:
        click.echo(
            f"the stored api_key ({current.value.fingerprint}) is refused by the provider: not adopted", err=True
        )
        ctx.exit(Exit.INPUT)
    detail = {"key_id": current.value.key_id, "fingerprint": current.value.fingerprint, "reason": reason}
    app.db.audit(None, secret=secret, actor=actor_name(), event=ADOPTED, detail=detail)
    click.echo(f"{secret}: key {current.value.key_id} ({current.value.fingerprint}) adopted as this secret's own")


@main.command()
@click.argument("instance")
@click.pass_context
def login(ctx: click.Context, instance: str) -> None:
    """Log in to a Boltly INSTANCE again (password from stdin or a hidden prompt); save its refresh token."""
    from rotator.keys import secret as wrap
    from rotator.providers.boltly import BoltlySettings, session_of
    from rotator.registry import Context

    app = _load(ctx)
    cfg = app.settings.providers.get(instance)
    if not isinstance(cfg, BoltlySettings):
        click.echo(f"{instance!r} is not a Boltly provider instance in rotator.yaml", err=True)
        ctx.exit(Exit.INPUT)
    session = session_of(cfg, Context(instance=instance, services=app))
    try:
        session.login(wrap(_read_hidden(f"password for {session.email}")))
    except RotatorError as exc:
        click.echo(f"login failed: {exc}", err=True)
        ctx.exit(Exit.FAILED)
    click.echo(f"logged in as {session.email}; refresh token saved to {session.keeper.where}")


@main.command()
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="one JSON document on stdout: each secret, when it is due and starts, and why",
)
@click.pass_context
def plan(ctx: click.Context, as_json: bool) -> None:
    """For every secret: its age, when it is due, the next start inside its window, and why. Changes nothing."""
    from rotator.views import plan_rows

    app = _load(ctx)
    now = utcnow()
    rows = plan_rows(app)
    if as_json:
        click.echo(json.dumps({"now": now.isoformat(timespec="seconds"), "secrets": rows}, indent=2))
        return
    for row in rows:
        age = f"{row['age_days']}d" if row["age_days"] is not None else "?"
        click.echo(f"{row['secret']:30} age {age:>8}  next start {row['next_start'] or 'never':25}  {row['why']}")


def _bulk(
    ctx: click.Context,
    app: App,
    secrets: list[str],
    *,
    policy: str,
    trigger: str,
    reason: str,
    per_provider: int,
    as_json: bool = False,
    via_daemons: bool = False,
    extra: dict[str, Any] | None = None,
) -> None:
    from rotator.bulk import NOT_STARTED, hand_to_daemons, rotate_many
    from rotator.progress import Progress

    if not secrets:
        click.echo("no secret matches", err=True)
        ctx.exit(Exit.INPUT)
    if not as_json:
        how = (
            "handed to the running daemons (this command follows them; stopping it stops nothing)"
            if via_daemons
            else f"at most {per_provider} at a time per provider"
        )
        click.echo(f"{trigger}: {len(secrets)} secrets under policy {policy}, {how}")
    # a terminal gets a live table; a pipe or a file a line per change; --json nothing until the end
    progress = Progress(secrets, live=sys.stdout.isatty() and not as_json, quiet=as_json)
    with progress, _ctrl_c_stops() as stop:
        if via_daemons:
            outcomes = hand_to_daemons(
                app,
                secrets,
                policy=policy,
                trigger=trigger,
                reason=reason,
                actor=actor_name(),
                on_step=progress.step,
                on_done=progress.done,
                stop=stop,
            )
        else:
            outcomes = rotate_many(
                app,
                secrets,
                policy=policy,
                trigger=trigger,
                reason=reason,
                actor=actor_name(),
                per_provider=per_provider,
                on_step=progress.step,
                on_done=progress.done,
                stop=stop,
            )
    interrupted = stop.is_set()
    if interrupted:
        started = [o for o in outcomes if o.state != NOT_STARTED]
        click.echo(
            f"interrupted: {len(outcomes) - len(started)} not started, {len(started)} recorded where they are "
            "(`rotator status`; a daemon or `rotator rotate NAME` goes on with those under way)",
            err=True,
        )
        if not started:
            ctx.exit(EXIT_INTERRUPTED)
    failed = [o for o in outcomes if o.state in (State.FAILED, "error") or o.state.startswith("held")]
    waiting = [o for o in outcomes if o.state in WITH_OPERATOR]
    completed = sum(o.state == State.COMPLETED for o in outcomes)
    in_progress = len(outcomes) - completed - len(failed) - len(waiting)
    if as_json:
        document = {
            "trigger": trigger,
            "policy": policy,
            **(extra or {}),
            "secrets": [dataclasses.asdict(o) for o in outcomes],
            "summary": {
                "completed": completed,
                "failed_or_held": len(failed),
                "waiting_on_a_person": len(waiting),
                "in_progress": in_progress,
            },
        }
        click.echo(json.dumps(document, indent=2))
    else:
        progress.summary(outcomes)
        click.echo(
            f"{completed} completed, {len(failed)} failed or held, {len(waiting)} waiting on a person, "
            f"{in_progress} still in progress"
        )
        if via_daemons and in_progress and not interrupted:
            click.echo(
                f"{in_progress} rotations did not move for a while: is `rotator run` running on this state "
                "database? They stay queued for the daemons (`rotator status` follows them).",
                err=True,
            )
    ctx.exit(
        Exit.FAILED
        if failed
        else Exit.OPERATOR
        if waiting
        else Exit.OK
        if completed == len(outcomes)
        else Exit.IN_PROGRESS
    )


VIA_DAEMONS = click.option(
    "--via-daemons",
    is_flag=True,
    help="hand the rotations to the running daemons (all replicas share them) and follow their progress",
)


@main.command()
@click.argument("secrets", nargs=-1)
@click.option("--provider", "provider", help="every secret of this provider instance")
@click.option("--all", "everything", is_flag=True, help="every secret")
@click.option(
    "--leaked-key",
    "leaked_key",
    metavar="-",
    help="read a leaked key from stdin ('-'; never an argument), find the secret it belongs to, rotate that one",
)
@click.option("--reason", default="", help="the incident: recorded in the audit trail (required unless --dry-run)")
@click.option("--concurrency", default=4, show_default=True, help="rotations at the same time per provider")
@VIA_DAEMONS
@click.option("--dry-run", is_flag=True, help="only say which secrets would rotate (and whose key a leaked key is)")
@click.option("--json", "as_json", is_flag=True, help="one JSON document on stdout: each secret and its outcome")
@click.pass_context
def incident(
    ctx: click.Context,
    secrets: tuple[str, ...],
    provider: str | None,
    everything: bool,
    leaked_key: str | None,
    reason: str,
    concurrency: int,
    via_daemons: bool,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Rotate many secrets now under the incident policy, in parallel, whatever their windows.

    \b
    Examples:
      rotator incident --all --reason "vendor breach 2026-12-01"
      rotator incident --leaked-key - --reason "key in a public repo" < leaked.txt
      rotator incident --provider brandwave-prod --via-daemons --reason "vendor breach"
    """
    app = _load(ctx)
    if sum([bool(secrets), provider is not None, everything, leaked_key is not None]) != 1:
        click.echo("name secrets, or --provider P, or --all, or --leaked-key - (one of them)", err=True)
        ctx.exit(Exit.INPUT)
    if provider is not None and provider not in app.settings.providers:
        click.echo(f"unknown provider instance {provider!r}", err=True)
        ctx.exit(Exit.INPUT)
    if not reason and not dry_run:
        click.echo("--reason is required (it goes to the audit trail)", err=True)
        ctx.exit(Exit.INPUT)
    found: list[dict[str, Any]] | None = None
    if leaked_key is not None:
        chosen, found = _leaked(ctx, app, leaked_key, reason=reason, dry_run=dry_run, as_json=as_json)
    else:
        chosen = (
            sorted(app.policies.secrets)
            if everything
            else [n for n, s in sorted(app.policies.secrets.items()) if s.provider == provider]
            if provider
            else list(secrets)
        )
        _require_secrets(ctx, app, chosen)
    if dry_run or (leaked_key is not None and not chosen):
        _dry_run(app, chosen, found, as_json=as_json)
        return
    _bulk(
        ctx,
        app,
        chosen,
        policy="incident",
        trigger="incident",
        reason=reason,
        per_provider=concurrency,
        as_json=as_json,
        via_daemons=via_daemons,
        extra={"leaked_key": found} if found is not None else {},
    )


def _leaked(
    ctx: click.Context, app: App, flag: str, *, reason: str, dry_run: bool, as_json: bool
) -> tuple[list[str], list[dict[str, Any]]]:
    """The secrets a leaked key (read from stdin) calls for rotating; a pending key's rotation is aborted first."""
    from rotator import leaked
    from rotator.keys import fingerprint, secret

    if flag != "-":
        # never echo the value: it may be the key itself, now in the shell history and the process list
        click.echo("--leaked-key takes '-' and reads the key from standard input, never from an argument", err=True)
        ctx.exit(Exit.INPUT)
    raw = _read_hidden("leaked key")
    if not raw:
        click.echo("no key on standard input", err=True)
        ctx.exit(Exit.INPUT)
    key = secret(raw)
    printed = fingerprint(key)
    search = leaked.find(app, key)
    if not search.matches:
        click.echo(
            f"the key {printed} matches no managed secret (fingerprints on record: "
            f"{search.recorded} rotations matched; current values read: {search.read} secrets)",
            err=True,
        )
        ctx.exit(Exit.INPUT)
    found = [
        {
            "secret": m.secret,
            "version": m.slot,
            "fingerprint": printed,
            "rotation_id": m.rotation.id if m.rotation else None,
            "alive": m.alive,
            "what": m.describe(),
        }
        for m in search.matches
    ]
    if not as_json:
        for m in search.matches:
            click.echo(f"leaked key {printed} is {m.describe()}")
    chosen = sorted({m.secret for m in search.matches if m.alive})
    why = f"the pending key leaked: {reason}"
    for m in search.matches:
        if m.slot == leaked.PENDING and not dry_run:
            assert m.rotation is not None
            # promoting a leaked key would make it current: roll its rotation back (revoking it) first
            runner, rotation = _under_lease(ctx, app, m.rotation, lambda e, r: interventions.abort(e, r, why=why))
            runner.run(rotation.id, follow=True)
    return chosen, found


def _dry_run(app: App, chosen: list[str], found: list[dict[str, Any]] | None, *, as_json: bool) -> None:
    rows = [{"secret": n, "provider": app.policies.secret(n).provider} for n in chosen]
    if as_json:
        leaked = {"leaked_key": found} if found is not None else {}
        click.echo(json.dumps({"dry_run": True, **leaked, "would_rotate": rows}, indent=2))
        return
    for row in rows:
        click.echo(row["secret"])  # one name a line: what a real run would rotate, for a script to read
    if not rows:
        click.echo("nothing to rotate", err=True)


@main.command()
@click.argument("person")
@click.option("--reason", default="", help="why: recorded in the audit trail (required unless --dry-run)")
@click.option("--concurrency", default=4, show_default=True, help="rotations at the same time per provider")
@VIA_DAEMONS
@click.option("--dry-run", is_flag=True, help="only list the secrets the person could see")
@click.option("--json", "as_json", is_flag=True, help="one JSON document on stdout: each secret and its outcome")
@click.pass_context
def offboard(
    ctx: click.Context, person: str, reason: str, concurrency: int, via_daemons: bool, dry_run: bool, as_json: bool
) -> None:
    """Rotate every secret whose `access` names PERSON, directly or through a team.

    \b
    Example:
      rotator offboard alice --dry-run
      rotator offboard alice --reason "left 2026-12-01" --json > offboarding.json
    """
    import difflib

    from rotator.bulk import everyone, people_of, who_is

    app = _load(ctx)
    people = who_is(app, person)
    if len(people) > 1:
        click.echo(f"{person} could be {', '.join(sorted(people))}; give the whole address", err=True)
        ctx.exit(Exit.INPUT)
    chosen = people_of(app, person)
    if not chosen:
        near = difflib.get_close_matches(person.casefold(), sorted(p.casefold() for p in everyone(app)), n=3)
        hint = f" (did you mean {', '.join(near)}?)" if near else ""
        click.echo(f"no secret names {person} in its access (directly or through a team){hint}", err=True)
        ctx.exit(Exit.INPUT)
    if dry_run:
        _dry_run(app, chosen, None, as_json=as_json)
        return
    if not reason:
        click.echo("--reason is required (it goes to the audit trail)", err=True)
        ctx.exit(Exit.INPUT)
    _bulk(
        ctx,
        app,
        chosen,
        policy="offboarding",
        trigger="offboarding",
        reason=f"{person}: {reason}",
        per_provider=concurrency,
        as_json=as_json,
        via_daemons=via_daemons,
        extra={"person": person},
    )


@main.command()
@click.argument("secret")
@click.option("--json", "as_json", is_flag=True, help="one JSON document on stdout: every audit event")
@click.pass_context
def history(ctx: click.Context, secret: str, as_json: bool) -> None:
    """The audit trail of SECRET: every rotation, who started it, why, and each step's outcome.

    \b
    --json: {"secret": …, "events": [{"at", "rotation_id", "event", "from_state", "to_state",
             "actor", "claimed_by", "detail"}, …]}
    """
    app = _load(ctx)
    events = app.db.events(secret=secret)
    if not events:
        app.policies.secret(secret)  # a secret no policy names and nothing recorded: a typo (exit 2)
    if as_json:
        rows = [
            {
                "at": e.at.isoformat(),
                "rotation_id": e.rotation_id,
                "event": e.event,
                "from_state": e.from_state,
                "to_state": e.to_state,
                "actor": e.actor,
                "claimed_by": e.claimed_by,
                "detail": e.detail,
            }
            for e in events
        ]
        click.echo(json.dumps({"secret": secret, "events": rows}, indent=2))
        return
    for event in events:
        move = (
            f" {event.from_state or ''}→{event.to_state}"
            if event.to_state and event.from_state != event.to_state
            else ""
        )
        detail = " ".join(f"{k}={v}" for k, v in event.detail.items() if v not in (None, "", []))
        rid = (event.rotation_id or "-")[:8]
        click.echo(f"{event.at.isoformat(timespec='seconds')} [{rid}] {event.event}{move} by {event.actor} {detail}")


@main.command()
@click.argument("directory", required=False, type=click.Path(path_type=Path))
@click.option("--offline", is_flag=True, help="check the files only; do not read store settings")
@click.option("--json", "as_json", is_flag=True, help='one JSON document on stdout: {"ok", "problems", "warnings", …}')
@click.pass_context
def validate(ctx: click.Context, directory: Path | None, offline: bool, as_json: bool) -> None:
    """Check rotator.yaml and the policy files; print file:line problems. Changes nothing."""
    if directory is not None:
        ctx.obj["policies"] = directory
    if as_json:
        try:
            App.load(ctx.obj["config"], ctx.obj["policies"])
        except InputError as exc:
            click.echo(json.dumps({"ok": False, "problems": exc.problems, "warnings": []}, indent=2))
            ctx.exit(Exit.INPUT)
    app = _load(ctx)
    warnings = [*transport_warnings(app.settings)]
    if not offline:
        # read-only look at each store: settings there that could break a promise
        for spec in app.policies.secrets.values():
            try:
                notes = app.store(spec.store.instance).warnings(location=spec.store.location)
            except RotatorError as exc:
                notes = [f"{spec.store.location}: could not check the store: {exc}"]
            warnings += [f"secret {spec.name}: {note}" for note in notes]
    if as_json:
        counts = {"policies": len(app.policies.policies), "secrets": len(app.policies.secrets)}
        click.echo(json.dumps({"ok": True, "problems": [], "warnings": warnings, **counts}, indent=2))
        return
    policies, secrets = len(app.policies.policies), len(app.policies.secrets)
    click.echo(f"ok: {policies} polic{'y' if policies == 1 else 'ies'}, {secrets} secret{'' if secrets == 1 else 's'}")
    for note in warnings:
        click.echo(f"warning: {note}", err=True)


@main.command()
@click.argument("secrets", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="one JSON document on stdout: every check and its outcome")
@click.pass_context
def check(ctx: click.Context, secrets: tuple[str, ...], as_json: bool) -> None:
    """Prove, changing nothing, that each admin credential works and each store location allows what a
    rotation needs (read, write pending, move stages / CAS write, tag / metadata). Exit 1 on any failure."""
    from rotator import preflight

    app = _load(ctx)
    names = list(secrets) or sorted(app.policies.secrets)
    _require_secrets(ctx, app, names)
    checks = preflight.run(app, names, writes=True)
    if as_json:
        click.echo(json.dumps({"ok": all(c.ok for c in checks), "checks": [c.as_dict() for c in checks]}, indent=2))
    else:
        for item in checks:
            click.echo(item.line())
        bad = sum(not c.ok for c in checks)
        click.echo(f"{len(checks) - bad} ok, {bad} failed" if checks else "nothing to check: no secrets")
    ctx.exit(Exit.OK if all(c.ok for c in checks) else Exit.FAILED)


@main.command()
@click.option("--fix", is_flag=True, help="revoke orphaned keys and clear orphaned pending versions")
@click.option("--ack", "ack", type=int, multiple=True, help="acknowledge a key left alive (its #id), with --reason")
@click.option("--reason", default="", help="why a left-alive key may stay: recorded in the audit trail")
@click.option(
    "--json", "as_json", is_flag=True, help='one JSON document on stdout: {"findings": [{kind, where, ident, why}]}'
)
@click.pass_context
def reconcile(ctx: click.Context, fix: bool, ack: tuple[int, ...], reason: str, as_json: bool) -> None:
    """Find keys named rotator-* that no rotation tracks, pending versions no rotation owns, and keys
    rotations left alive (aborted, or a rollback that could not finish) until revoked or acknowledged."""
    from rotator.reconcile import reconcile as run_reconcile

    app = _load(ctx)
    if ack:
        if not reason:
            click.echo("--ack needs --reason (recorded in the audit trail)", err=True)
            ctx.exit(Exit.INPUT)
        for leftover_id in ack:
            app.db.resolve_leftover(leftover_id, resolution=f"acknowledged: {reason}", actor=actor_name())
            click.echo(f"left-alive key #{leftover_id} acknowledged")
    findings = run_reconcile(app, fix=fix, actor=actor_name())
    if as_json:
        rows = [{**dataclasses.asdict(f), "fixed": fix and f.kind != "left-alive"} for f in findings]
        click.echo(json.dumps({"findings": rows}, indent=2))
    else:
        for finding in findings:
            click.echo(finding.describe(fixed=fix))
        if not findings:
            click.echo("nothing orphaned")
    ctx.exit(Exit.FAILED if findings and not fix else Exit.OK)


@main.command()
@click.pass_context
def run(ctx: click.Context) -> None:
    """The daemon: schedule policy rotations, advance rotations in flight, serve /healthz /readyz /metrics."""
    from rotator.daemon.service import Daemon

    app = _load(ctx)
    ctx.exit(Daemon(ctx.obj["config"], ctx.obj["policies"], app).run())


@main.command()
@click.option("--ready", is_flag=True, help="ask /readyz (a tick went through) instead of /healthz (ticks happen)")
@click.option("--timeout", default=5.0, show_default=True, help="seconds to wait for an answer")
@click.pass_context
def health(ctx: click.Context, ready: bool, timeout: float) -> None:
    """Ask the local daemon, at its `daemon.listen`, whether it is healthy: exit 0 if so, 1 if not.

    For a container HEALTHCHECK or a probe script: it follows `daemon.listen` (rotator.yaml or
    ROTATOR_DAEMON__LISTEN) and reads no policy file.
    """
    import httpx

    from rotator import config as config_module

    try:
        settings = config_module.load(config_module.config_path(ctx.obj["config"]))
    except InputError as exc:
        for problem in exc.problems:
            click.echo(problem, err=True)
        ctx.exit(Exit.INPUT)
    host, _, port = settings.daemon.listen.rpartition(":")
    # a daemon listening on every address answers on loopback
    host = {"0.0.0.0": "127.0.0.1", "[::]": "[::1]", "": "127.0.0.1"}.get(host, host)  # noqa: S104 (a lookup)
    url = f"http://{host}:{port}/{'readyz' if ready else 'healthz'}"
    try:
        answer = httpx.get(url, timeout=timeout)
    except httpx.HTTPError as exc:
        click.echo(f"{url}: {type(exc).__name__}", err=True)
        ctx.exit(Exit.FAILED)
    click.echo(f"{url}: {answer.status_code} {answer.text.strip()}")
    ctx.exit(Exit.OK if answer.status_code == 200 else Exit.FAILED)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", "ports", multiple=True, help="NAME=PORT to fix a simulator's port")
def sandbox(host: str, ports: tuple[str, ...]) -> None:
    """Run local simulators of the providers; print `<provider> <base_url>` for each, until stopped."""
    try:
        from rotator_sandbox.server import serve_all
    except ImportError:
        click.echo(f"error: {SANDBOX_MISSING}", err=True)
        sys.exit(Exit.INPUT)

    log.configure(level="warning")
    fixed = {name: int(port) for name, _, port in (p.partition("=") for p in ports)}
    running = serve_all(host=host, ports=fixed)
    for r in running:
        click.echo(f"{r.name} {r.api_url}")
    sys.stdout.flush()
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    for r in running:
        r.stop()


@main.command()
@click.option("--workdir", type=click.Path(path_type=Path), default=None, help="keep the demo's files here")
def demo(workdir: Path | None) -> None:
    """A full rotation against local sandboxes (moto server + provider simulators), step by step."""
    try:
        from rotator.cli.demo import run_demo
    except ImportError:
        click.echo(f"error: {SANDBOX_MISSING}", err=True)
        sys.exit(Exit.INPUT)

    try:
        code = run_demo(workdir)
    except RotatorError as exc:
        click.echo(f"demo failed: {exc}", err=True)
        code = Exit.FAILED
    sys.exit(code)


SANDBOX_MISSING = (
    "the provider simulators are not installed: they are a package of their own (rotator-sandbox, "
    "never for production); from rotator's source tree run `make setup`, or `pip install ./sandbox`"
)

main.add_command(state_commands.db)
main.add_command(state_commands.audit)
