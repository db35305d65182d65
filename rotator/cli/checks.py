"""The commands that look: is the configuration right, may rotator do what a rotation needs, and
(reconcile) what the providers and stores hold that no rotation accounts for."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import click

from rotator.cli.common import actor_name, load_app, require_secrets
from rotator.cli.exit import Exit
from rotator.cli.render import count
from rotator.errors import InputError, RotatorError


@click.command()
@click.argument("directory", required=False, type=click.Path(path_type=Path))
@click.option("--offline", is_flag=True, help="check the files only; do not read store settings")
@click.option("--json", "as_json", is_flag=True, help='one JSON document on stdout: {"ok", "problems", "warnings", …}')
@click.pass_context
def validate(ctx: click.Context, directory: Path | None, offline: bool, as_json: bool) -> None:
    """Check rotator.yaml and the policy files; print file:line problems. Changes nothing."""
    from rotator.app import App
    from rotator.settings.models import transport_warnings

    if directory is not None:
        ctx.obj["policies"] = directory
    if as_json:
        try:
            App.load(ctx.obj["config"], ctx.obj["policies"])
        except InputError as exc:
            from rotator import log

            problems = [log.redact(problem) for problem in exc.problems]
            click.echo(json.dumps({"ok": False, "problems": problems, "warnings": []}, indent=2))
            ctx.exit(Exit.INPUT)
    app = load_app(ctx)
    warnings = [*transport_warnings(app.settings)]
    if not app.policies.secrets:
        warnings.append(f"no policy file in {app.policies_dir} names a secret: nothing will rotate")
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
    policies, secrets = (
        count(len(app.policies.policies), "policy", "policies"),
        count(len(app.policies.secrets), "secret"),
    )
    click.echo(f"ok: {policies}, {secrets}")
    for note in warnings:
        click.echo(f"warning: {note}", err=True)


@click.command()
@click.argument("secrets", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="one JSON document on stdout: every check and its outcome")
@click.pass_context
def check(ctx: click.Context, secrets: tuple[str, ...], as_json: bool) -> None:
    """Prove, changing nothing, that each admin credential works and each store location allows what a
    rotation needs (read, write pending, move stages / CAS write, tag / metadata). Exit 1 on any failure."""
    from rotator.operations import preflight

    app = load_app(ctx)
    names = list(secrets) or sorted(app.policies.secrets)
    require_secrets(ctx, app, names)
    checks = preflight.run(app, names, writes=True)
    if as_json:
        click.echo(json.dumps({"ok": all(c.ok for c in checks), "checks": [c.as_dict() for c in checks]}, indent=2))
    else:
        for item in checks:
            # colour only reaches a terminal: click.echo strips it from a pipe or a file
            line = item.line()
            click.echo(line if item.ok else line.replace("FAIL", click.style("FAIL", fg="red", bold=True), 1))
        bad = sum(not c.ok for c in checks)
        click.echo(f"{len(checks) - bad} ok, {bad} failed" if checks else "nothing to check: no secrets")
    ctx.exit(Exit.OK if all(c.ok for c in checks) else Exit.FAILED)


@click.command()
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
    from rotator.operations.reconcile import reconcile as run_reconcile

    app = load_app(ctx)
    if ack:
        if not reason:
            click.echo("--ack needs --reason (recorded in the audit trail)", err=True)
            ctx.exit(Exit.INPUT)
        for leftover_id in ack:
            try:
                app.db.resolve_leftover(leftover_id, resolution=f"acknowledged: {reason}", actor=actor_name())
            except RotatorError as exc:
                click.echo(f"{exc} (`rotator reconcile` lists the keys left alive, with their #id)", err=True)
                ctx.exit(Exit.INPUT)
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
