"""The `rotator` command: the group, its global options, and where each command lives.

The commands are grouped by what they are about (`rotations`, `fleet`, `checks`, `service`, `state`)
and share `common` and `render`. Each module imports click and little else at import time, and
the engine, the state database and the settings only inside a command: `--help`, `--version` and
shell completion stay fast (benchmarks/cli_start.py).

Exit codes: 0 completed / ok, 1 failed, 2 bad input, 3 still in progress (waiting on time),
4 waiting on an operator, 5 held (needs a person's attention), 6 another process holds the secret.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from rotator.cli import checks, fleet, rotations, service
from rotator.cli import state as state_commands
from rotator.cli.exit import Exit
from rotator.errors import InputError, RotatorError, SchemaMismatch


class _Commands(click.Group):
    """Errors no command handled become one line and an exit code, never a traceback. Beside
    rotator's own commands, those the installed provider types add (cli/actions.py); an own
    command's name always means the own command."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        from rotator.plugin.actions import names

        return sorted({*super().list_commands(ctx), *names()})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if (own := super().get_command(ctx, cmd_name)) is not None:
            return own
        from rotator.cli.actions import command

        return command(cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (InputError, SchemaMismatch) as exc:
            # bad input may quote a key pasted in the wrong place (a policy's `type: bwpat_…`)
            click.echo(_redacted(str(exc)), err=True)
            ctx.exit(Exit.INPUT)
        except RotatorError as exc:
            click.echo(f"error: {_redacted(str(exc))}", err=True)
            ctx.exit(Exit.FAILED)
        except (KeyboardInterrupt, click.Abort):
            # Ctrl-C where a command does not stop by itself (a prompt, a preflight check): before
            # anything was started, or a second Ctrl-C that quits at once; the shell's 128 + SIGINT
            click.echo("\ninterrupted", err=True)
            ctx.exit(Exit.INTERRUPTED)
        except BrokenPipeError:
            # `rotator status | head`: the reader has all it wanted; the rest goes nowhere, quietly
            import os
            import sys

            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            ctx.exit(Exit.BROKEN_PIPE)
        except OSError as exc:
            # a file, a socket, a directory the system refused: what and why, not a traceback
            where = f" ({exc.filename})" if exc.filename else ""
            click.echo(f"error: {exc.strerror or type(exc).__name__}{where}", err=True)
            ctx.exit(Exit.FAILED)


def _redacted(text: str) -> str:
    from rotator import log

    return log.redact(text)


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
      130  interrupted (Ctrl-C) before anything started
    """
    from rotator import log
    from rotator.runtime import hardening

    hardening.harden()
    ctx.obj = {"config": config, "policies": policies, "log_level": log_level}
    log.configure(level=log_level or "warning")


for command in (
    rotations.rotate,
    rotations.status,
    rotations.supply,
    rotations.release,
    rotations.abort,
    rotations.adopt,
    fleet.plan,
    fleet.incident,
    fleet.offboard,
    rotations.history,
    checks.validate,
    checks.check,
    checks.reconcile,
    service.run,
    service.health,
    service.sandbox,
    service.demo,
    state_commands.db,
    state_commands.audit,
):
    main.add_command(command)
