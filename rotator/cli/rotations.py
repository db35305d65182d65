"""The commands about one secret or one rotation: start it, look at it, act on it by hand."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

from rotator.cli.common import (
    actor_name,
    ctrl_c_stops,
    find_rotation,
    load_app,
    preflight_or_exit,
    read_hidden,
    require_secrets,
    under_lease,
)
from rotator.cli.exit import Exit
from rotator.cli.render import age, json_document, moment, outcome, print_blocked, print_step, table
from rotator.errors import KeyRejected, LeaseHeld

if TYPE_CHECKING:
    pass


@click.command()
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
    app = load_app(ctx)
    actor = actor_name()
    require_secrets(ctx, app, secrets)
    if policy is not None and policy not in app.policies.policies:
        click.echo(f"unknown policy {policy!r} (known: {', '.join(sorted(app.policies.policies))})", err=True)
        ctx.exit(Exit.INPUT)
    preflight_or_exit(ctx, app, list(secrets))
    from rotator.engine import requests

    runner = app.runner(actor)
    codes: list[Exit] = []
    for name in secrets:
        spec = app.policies.secret(name)
        try:
            # a person asked for it now: one under way is looked at at once (every step re-checks
            # the world before acting), and put under --policy when that names another
            rotation, new = requests.start_or_escalate(
                runner,
                secret=name,
                provider=spec.provider,
                policy=policy,
                default_policy=spec.policy,
                trigger="manual",
                reason=reason,
                actor=actor,
                look_now=True,
            )
        except LeaseHeld as exc:
            click.echo(str(exc), err=True)
            codes.append(Exit.LOCKED)
            continue
        if new:
            click.echo(f"{name}: rotation {rotation.id} requested (policy {rotation.policy})")
        else:
            click.echo(f"{name}: resuming rotation {rotation.id} in state {rotation.state} (policy {rotation.policy})")
        try:
            with ctrl_c_stops() as stop:
                runner.sleep = stop.wait
                final = runner.run(
                    rotation.id,
                    follow=not detach,
                    on_step=print_step(rotation),
                    on_blocked=print_blocked(name),
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

        codes.append(outcome(final))
    ctx.exit(max(codes))


@click.command()
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
    from rotator.operations.views import status_rows

    app = load_app(ctx)
    if secret is not None:
        app.policies.secret(secret)  # an unknown name is bad input (exit 2), not an empty table
    rows = status_rows(app, secret)
    daemons = app.db.replicas_alive()
    if as_json:
        json_document({"daemons_alive": daemons}, "secrets", rows)
        return
    if not rows:
        click.echo(f"no secrets: no policy file in {app.policies_dir} names one", err=True)
        return
    waiting = [r for r in rows if r["rotation"] and r["rotation"]["operator_action"]]
    if waiting:
        click.echo("waiting on a person:")
        for row in waiting:
            rot = row["rotation"]
            since = moment(rot["since"])
            click.echo(f"  {row['secret']} [{rot['id']}] {rot['state']} since {since}: {rot['waiting_for']}")
        click.echo("")
    cells = []
    for row in rows:
        rot = row["rotation"]
        if rot is None:
            doing = "idle"
        elif rot["held"]:
            doing = f"{rot['state']} ({click.style('HELD', fg='red', bold=True)}: {rot['held']})"
        else:
            doing = f"{rot['state']} ({rot['waiting_for'] or 'running'})"
        cells.append([row["secret"], row["provider"], age(row["age_seconds"]), moment(row["next_due"]), doing])
    header, *lines = table(["SECRET", "PROVIDER", "KEY AGE", "NEXT DUE", "ROTATION"], cells)
    if header:
        click.echo(header)
    for row, line in zip(rows, lines, strict=True):
        click.echo(line)
        for kept in row["left_alive"]:
            name = kept["key_id"] or kept["fingerprint"]
            click.echo(f"  ! key {name} left alive since {moment(kept['since'])}: {kept['why']} (#{kept['id']})")
    moving = [r for r in rows if r["rotation"] and not r["rotation"]["operator_action"] and not r["rotation"]["held"]]
    if moving and not daemons:
        click.echo(
            f"no daemon is running on this state database: {len(moving)} rotation(s) in flight wait until "
            "`rotator run` starts or `rotator rotate NAME` goes on with one",
            err=True,
        )


@click.command()
@click.argument("rotation_id")
@click.pass_context
def supply(ctx: click.Context, rotation_id: str) -> None:
    """Hand over a key made in a dashboard for ROTATION_ID; read from stdin or a hidden prompt, never argv.

    The key is checked (format, the provider accepts it, same account as the old key) before it is
    stored; a rejected key leaves the rotation waiting.
    """
    from rotator.keys import secret as wrap
    from rotator.lifecycle import State

    app = load_app(ctx)
    rotation = find_rotation(ctx, app, rotation_id)
    if rotation.state != State.AWAITING_NEW_KEY:
        # asked before the key is read: a key typed for nothing is a key exposed for nothing
        state = rotation.state
        click.echo(f"rotation {rotation.id[:8]} of {rotation.secret} is {state}: it waits for no key", err=True)
        ctx.exit(Exit.INPUT)
    key = wrap(read_hidden(f"new {rotation.provider} key for {rotation.secret}"))  # read before taking the lease
    try:
        runner, rotation = under_lease(
            ctx,
            app,
            rotation,
            lambda engine, r: engine.supply(r, key),
            "operator",
            still_waiting=f"rotation {rotation_id} still waits for a key (supply it again later)",
        )
    except KeyRejected as exc:
        click.echo(f"key rejected — {exc}; rotation {rotation_id} still waits for a key", err=True)
        ctx.exit(Exit.INPUT)
    click.echo(f"{rotation.secret}: key accepted ({rotation.new_fingerprint}); continuing rotation {rotation.id}")
    final = runner.run(
        rotation.id, follow=True, on_step=print_step(rotation), on_blocked=print_blocked(rotation.secret)
    )
    ctx.exit(outcome(final))


@click.command()
@click.argument("rotation_id")
@click.option("--reason", default="released by hand", help="why: recorded in the audit trail")
@click.pass_context
def release(ctx: click.Context, rotation_id: str, reason: str) -> None:
    """Open the cutover gate of ROTATION_ID by hand: revoke the old key now, then verify it is dead."""
    from rotator.engine import interventions

    app = load_app(ctx)
    runner, rotation = under_lease(
        ctx, app, find_rotation(ctx, app, rotation_id), lambda e, r: interventions.release(e, r, why=reason)
    )
    click.echo(f"{rotation.secret}: gate released by hand; revoking the old key")
    final = runner.run(
        rotation.id, follow=True, on_step=print_step(rotation), on_blocked=print_blocked(rotation.secret)
    )
    ctx.exit(outcome(final))


@click.command()
@click.argument("rotation_id")
@click.option("--reason", required=True, help="why: recorded in the audit trail")
@click.pass_context
def abort(ctx: click.Context, rotation_id: str, reason: str) -> None:
    """Stop ROTATION_ID: before promotion it rolls back; at the gate the new key stays and the old one lives on."""
    from rotator.engine import interventions

    app = load_app(ctx)
    runner, rotation = under_lease(
        ctx, app, find_rotation(ctx, app, rotation_id), lambda e, r: interventions.abort(e, r, why=reason)
    )
    final = runner.run(
        rotation.id, follow=True, on_step=print_step(rotation), on_blocked=print_blocked(rotation.secret)
    )
    click.echo(f"rotation {final.id} of {final.secret} aborted ({final.state}): {final.failed_reason}")
    ctx.exit(Exit.OK)


@click.command()
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

    app = load_app(ctx)
    require_secrets(ctx, app, [secret])
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


@click.command()
@click.argument("secret")
@click.option("--json", "as_json", is_flag=True, help="one JSON document on stdout: every audit event")
@click.pass_context
def history(ctx: click.Context, secret: str, as_json: bool) -> None:
    """The audit trail of SECRET: every rotation, who started it, why, and each step's outcome.

    \b
    --json: {"secret": …, "events": [{"at", "rotation_id", "event", "from_state", "to_state",
             "actor", "claimed_by", "detail"}, …]}
    """
    app = load_app(ctx)
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
    if not events:
        click.echo(f"{secret}: no rotation recorded yet (`rotator plan` says when one is due)", err=True)
    for event in events:
        # a move only where there is one: `requested` made the rotation, it moved nowhere
        if event.from_state and event.to_state and event.from_state != event.to_state:
            move = f" {event.from_state} → {event.to_state}"
        elif not event.from_state and event.to_state and event.to_state != event.event:
            move = f" → {event.to_state}"
        else:
            move = ""
        detail = " ".join(f"{k}={v}" for k, v in event.detail.items() if v not in (None, "", []))
        rid = (event.rotation_id or "-")[:8]
        click.echo(f"{moment(event.at)} [{rid}] {event.event}{move} by {event.actor} {detail}".rstrip())
