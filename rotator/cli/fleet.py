"""The commands about many secrets at once: the plan, an incident, an offboarding, reconciling."""

from __future__ import annotations

import dataclasses
import json
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import click

from rotator.cli.common import (
    actor_name,
    ctrl_c_stops,
    load_app,
    read_hidden,
    require_secrets,
    under_lease,
)
from rotator.cli.exit import Exit
from rotator.cli.render import age, count, json_document, moment, table

if TYPE_CHECKING:
    from rotator.app import App


@click.command()
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="one JSON document on stdout: each secret, when it is due and starts, and why",
)
@click.pass_context
def plan(ctx: click.Context, as_json: bool) -> None:
    """For every secret: its age, when it is due, the next start inside its window, and why. Changes nothing."""
    from rotator.operations.views import plan_rows

    app = load_app(ctx)
    now = datetime.now(UTC)
    if as_json:
        json_document({"now": now.isoformat(timespec="seconds")}, "secrets", plan_rows(app))
        return
    rows = list(plan_rows(app))
    if not rows:
        click.echo(f"no secrets: no policy file in {app.policies_dir} names one", err=True)
        return
    cells = [
        [
            row["secret"],
            age(row["age_seconds"]) if row["age_seconds"] is not None else "unknown",
            moment(row["due"]),
            moment(row["next_start"]) if row["next_start"] else "never",
            row["why"],
        ]
        for row in rows
    ]
    for line in table(["SECRET", "KEY AGE", "DUE", "NEXT START", "WHY"], cells):
        if line:
            click.echo(line)


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
    from rotator.cli.progress import Progress
    from rotator.operations.bulk import Kind, hand_to_daemons, rotate_many

    if not secrets:
        click.echo("no secret matches", err=True)
        ctx.exit(Exit.INPUT)
    app.db  # noqa: B018 (opened now: a state it may not use is refused before anything starts)
    if not as_json:
        how = (
            "handed to the running daemons (this command follows them; stopping it stops nothing)"
            if via_daemons
            else f"at most {per_provider} at a time per provider"
        )
        click.echo(f"{trigger}: {count(len(secrets), 'secret')} under policy {policy}, {how}")
    # a terminal gets a live table; a pipe or a file a line per change; --json nothing until the end
    progress = Progress(secrets, live=sys.stdout.isatty() and not as_json, quiet=as_json)
    with progress, ctrl_c_stops() as stop:
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
        started = [o for o in outcomes if o.kind is not Kind.NOT_STARTED]
        click.echo(
            f"interrupted: {len(outcomes) - len(started)} not started, {len(started)} recorded where they are "
            "(`rotator status`; a daemon or `rotator rotate NAME` goes on with those under way)",
            err=True,
        )
        if not started:
            ctx.exit(Exit.INTERRUPTED)
    failed = [o for o in outcomes if o.failed_or_held]
    waiting = [o for o in outcomes if o.kind is Kind.WAITING]
    completed = sum(o.kind is Kind.COMPLETED for o in outcomes)
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
                f"{count(in_progress, 'rotation')} did not move for a while: is `rotator run` running on this state "
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


@click.command()
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
    app = load_app(ctx)
    if sum([bool(secrets), provider is not None, everything, leaked_key is not None]) != 1:
        click.echo("name secrets, or --provider P, or --all, or --leaked-key - (one of them)", err=True)
        ctx.exit(Exit.INPUT)
    if provider is not None and provider not in app.settings.providers:
        import difflib

        known = sorted(app.settings.providers)
        near = [n for n in known if n.casefold() == provider.casefold()] or difflib.get_close_matches(provider, known)
        hint = f"did you mean {near[0]!r}?" if near else f"known: {', '.join(known) or 'none'}"
        click.echo(f"unknown provider instance {provider!r} ({hint})", err=True)
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
        require_secrets(ctx, app, chosen)
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
    from rotator.engine import interventions
    from rotator.keys import fingerprint, secret
    from rotator.operations import leaked

    if flag != "-":
        # never echo the value: it may be the key itself, now in the shell history and the process list
        click.echo("--leaked-key takes '-' and reads the key from standard input, never from an argument", err=True)
        ctx.exit(Exit.INPUT)
    raw = read_hidden("leaked key")
    if not raw:
        click.echo("no key on standard input", err=True)
        ctx.exit(Exit.INPUT)
    key = secret(raw)
    printed = fingerprint(key)
    search = leaked.find(app, key)
    if not search.matches:
        click.echo(
            f"the key {printed} matches no managed secret (fingerprints on record: "
            f"{count(search.recorded, 'rotation')} matched; current values read: {count(search.read, 'secret')})",
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
            runner, rotation = under_lease(ctx, app, m.rotation, lambda e, r: interventions.abort(e, r, why=why))
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


@click.command()
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

    from rotator.operations.bulk import everyone, people_of, who_is

    app = load_app(ctx)
    people = who_is(app, person)
    if len(people) > 1:
        click.echo(f"{person} could be {', '.join(sorted(people))}; give the whole address", err=True)
        ctx.exit(Exit.INPUT)
    chosen = people_of(app, person)
    if not chosen:
        known = sorted(p.casefold() for p in everyone(app))
        # a beginning (`ali` for alice@… and alicia@…) before a likeness (`alcie`)
        near = [k for k in known if k.startswith(person.casefold())][:3] or difflib.get_close_matches(
            person.casefold(), known, n=3
        )
        hint = f" (did you mean {', '.join(near)}?)" if near else ""
        from rotator import log

        said = log.redact(person)  # a key pasted in the wrong place is not repeated
        click.echo(f"no secret names {said} in its access (directly or through a team){hint}", err=True)
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
