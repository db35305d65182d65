"""`rotator db …` and `rotator audit …`: the state database's schema and the audit chain."""

from __future__ import annotations

import json

import click

from rotator.cli.exit import Exit
from rotator.cli.render import moment
from rotator.errors import InputError


def _url(ctx: click.Context) -> str:
    from rotator.settings import config

    try:
        settings = config.load(config.config_path((ctx.find_root().obj or {}).get("config")))
    except InputError as exc:
        for problem in exc.problems:
            click.echo(problem, err=True)
        ctx.exit(Exit.INPUT)
    return settings.state_url()


def _missing(url: str) -> str | None:
    """The SQLite file `url` names when there is none yet (opening it would make it), else None."""
    from pathlib import Path

    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or Path(parsed.database).exists():
        return None
    return parsed.database


@click.group()
def db() -> None:
    """The state database's schema: which revision it is at, and upgrading it."""


@db.command("status")
@click.pass_context
def db_status(ctx: click.Context) -> None:
    """Print the database's schema revision and the one this rotator needs; exit 1 when they differ."""
    from rotator.state import migrate
    from rotator.state.connection import open_engine, unavailable_as_one_line

    url = _url(ctx)
    if (where := _missing(url)) is not None:
        click.echo(f"database: none at {where} yet; this rotator: {migrate.HEAD}")
        return
    engine = open_engine(url)
    try:
        with unavailable_as_one_line(engine), engine.connect() as conn:
            found = migrate.revision_of(conn)
    finally:
        engine.dispose()
    click.echo(f"database: {found or 'empty'}; this rotator: {migrate.HEAD}")
    ctx.exit(Exit.OK if found in (None, migrate.HEAD) else Exit.FAILED)


@db.command("upgrade")
@click.pass_context
def db_upgrade(ctx: click.Context) -> None:
    """Upgrade the state database to this rotator's schema, rotations in flight included. Back it up first."""
    from rotator.app import database_named
    from rotator.state import migrate
    from rotator.state.db import StateDB

    url = _url(ctx)
    if (where := _missing(url)) is not None:
        click.echo(
            f"no state database at {where}: nothing to upgrade. Is this the daemon's? (state.directory or "
            "state.url in its rotator.yaml; run as its user)",
            err=True,
        )
        ctx.exit(Exit.INPUT)
    state = StateDB(url, upgrade=True)
    state.close()
    was = state.schema_was
    if was == "none":
        click.echo(f"no rotator schema was in {database_named(url)}: made this rotator's ({migrate.HEAD})")
        return
    click.echo(
        f"schema already at {migrate.HEAD}" if was == migrate.HEAD else f"schema upgraded from {was} to {migrate.HEAD}"
    )


@click.group()
def audit() -> None:
    """The audit trail: proving it was not rewritten."""


@audit.command("verify")
@click.option("--json", "as_json", is_flag=True, help="one JSON document: rows checked and the first bad row")
@click.pass_context
def audit_verify(ctx: click.Context, as_json: bool) -> None:
    """Walk the audit trail's hash chain; name the first row that does not match (exit 1), else exit 0."""
    from rotator.state.db import StateDB

    state = StateDB(_url(ctx))
    try:
        checked, bad = state.verify_audit()
    finally:
        state.close()
    if as_json:
        click.echo(json.dumps({"checked": checked, "first_bad_row": bad.id if bad else None, "ok": bad is None}))
    elif bad is None:
        click.echo(f"audit trail intact: {checked} rows, every hash chained")
    else:
        click.echo(
            f"audit trail broken at row {bad.id} ({moment(bad.at)} {bad.event} "
            f"on {bad.secret}): its hash does not follow from the rows before; {checked} rows before it are intact"
        )
    ctx.exit(Exit.OK if bad is None else Exit.FAILED)
