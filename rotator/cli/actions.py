"""The commands provider types add (plugin/actions.py), built into click commands when asked for:
`rotator --help` and shell completion list them without loading any adapter."""

from __future__ import annotations

import click

from rotator.cli.common import load_app, read_hidden
from rotator.cli.exit import Exit
from rotator.errors import RotatorError
from rotator.plugin.actions import Action, action


def command(name: str) -> click.Command | None:
    """`rotator <name> INSTANCE` for the installed action called `name`, or None."""
    found = action(name)
    return None if found is None else _command(found)


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
            click.echo(f"{act.name} failed: {exc}", err=True)
            ctx.exit(Exit.FAILED)
        click.echo(said)

    return run
