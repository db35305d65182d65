"""The commands provider types add (plugin/actions.py), built into click commands when asked for:
shell completion lists them by name only; `rotator --help` loads each action's light module, never
an adapter."""

from __future__ import annotations

import click

from rotator.cli.common import load_app, read_hidden
from rotator.cli.exit import Exit
from rotator.errors import InputError, RotatorError
from rotator.plugin.actions import Action, action


def command(name: str) -> click.Command | None:
    """`rotator <name> INSTANCE` for the installed action called `name`, or None. An action that
    cannot be loaded (its package is broken) is still a command: `--help` lists it as such, and
    running it says why, with exit 2, instead of "no such command" or a traceback."""
    try:
        found = action(name)
    except Exception as exc:  # another package's import error, whatever it is
        return _broken(name, exc)
    return None if found is None else _command(found)


def _broken(name: str, exc: Exception) -> click.Command:
    from rotator import log

    why = log.redact(f"{type(exc).__name__}: {exc}" if not isinstance(exc, InputError) else str(exc))

    @click.command(name=name, help=f"(a provider type's command that cannot be loaded: {why})")
    @click.argument("args", nargs=-1)
    @click.pass_context
    def run(ctx: click.Context, args: tuple[str, ...]) -> None:
        click.echo(f"rotator {name}: a provider type's command that cannot be loaded: {why}", err=True)
        ctx.exit(Exit.INPUT)

    return run


def _command(act: Action) -> click.Command:
    @click.command(name=act.name, help=act.help)
    @click.argument("instance")
    @click.pass_context
    def run(ctx: click.Context, instance: str) -> None:
        from rotator import log
        from rotator.keys import secret
        from rotator.plugin.registry import Context

        app = load_app(ctx)
        settings = app.settings.providers.get(instance)
        if settings is None or settings.type != act.provider:
            mine = sorted(n for n, p in app.settings.providers.items() if p.type == act.provider)
            known = f"its instances: {', '.join(mine)}" if mine else "rotator.yaml has none"
            click.echo(
                f"{log.redact(repr(instance))} is not a {act.provider} provider instance in rotator.yaml ({known})",
                err=True,
            )
            ctx.exit(Exit.INPUT)
        try:
            said = act.run(
                settings, Context(instance=instance, services=app), lambda prompt: secret(read_hidden(prompt))
            )
        except RotatorError as exc:
            click.echo(f"{act.name} failed: {log.redact(str(exc))}", err=True)
            ctx.exit(Exit.FAILED)
        # another package's text: whatever key it was given or made is masked here too
        click.echo(log.redact(str(said)))

    return run
