"""The commands provider types add (plugin/actions.py), built into click commands when asked for:
shell completion lists them by name only; `rotator --help` loads each action's light module, never
an adapter."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from rotator.cli.common import load_app, read_hidden
from rotator.cli.exit import Exit
from rotator.errors import InputError, RotatorError
from rotator.plugin.actions import Action, action

if TYPE_CHECKING:
    from pydantic import SecretStr


def command(name: str) -> click.Command | None:
    """`rotator <name> INSTANCE` for the installed action called `name`, or None. An action that
    cannot be loaded (its package is broken, two packages give the name) is still a command:
    `--help` lists it as such, and running it says why, with exit 2, never a traceback."""
    try:
        found = action(name)
    except InputError as exc:
        return _broken(name, "; ".join(exc.problems))
    return None if found is None else _command(found)


def _broken(name: str, why: str) -> click.Command:
    from rotator import log

    why = log.redact(why)

    @click.command(name=name, help=f"(a provider type's command that cannot be used: {why})")
    @click.argument("args", nargs=-1)
    @click.pass_context
    def run(ctx: click.Context, args: tuple[str, ...]) -> None:
        click.echo(f"rotator {name}: a provider type's command that cannot be used: {why}", err=True)
        ctx.exit(Exit.INPUT)

    return run


def _command(act: Action) -> click.Command:
    @click.command(name=act.name, help=act.help)
    @click.argument("instance")
    @click.pass_context
    def run(ctx: click.Context, instance: str) -> None:
        from rotator import log
        from rotator.keys import secret
        from rotator.plugin import registry
        from rotator.plugin.registry import Context

        app = load_app(ctx)
        settings = app.settings.providers.get(instance)
        if settings is None or settings.type != act.provider:
            if act.provider not in registry.providers():
                said = f"its provider type {act.provider!r} is not installed"
            else:
                mine = sorted(n for n, p in app.settings.providers.items() if p.type == act.provider)
                said = f"its instances: {', '.join(mine)}" if mine else "rotator.yaml has none"
            click.echo(
                f"rotator {act.name} acts on {act.provider} provider instances; "
                f"{log.redact(repr(instance))} is none ({said})",
                err=True,
            )
            ctx.exit(Exit.INPUT)

        def ask(prompt: str) -> SecretStr:
            given = read_hidden(prompt)
            if not given:
                raise InputError([f"nothing given for {prompt!r}"])
            return secret(given)

        try:
            said = act.run(settings, Context(instance=instance, services=app), ask)
        except InputError as exc:
            click.echo(log.redact(f"{act.name}: {'; '.join(exc.problems)}"), err=True)
            ctx.exit(Exit.INPUT)
        except RotatorError as exc:
            click.echo(f"{act.name} failed: {log.redact(str(exc))}", err=True)
            ctx.exit(Exit.FAILED)
        except Exception as exc:
            # another package's bug: said, without a traceback (a key in it would be masked anyway)
            click.echo(f"{act.name} failed: {log.redact(f'{type(exc).__name__}: {exc}')}", err=True)
            ctx.exit(Exit.FAILED)
        if said is not None:
            # another package's text: whatever key it was given or made is masked here too
            click.echo(log.redact(str(said)))

    return run
