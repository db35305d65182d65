"""The daemon and what runs beside it: `run`, `health`, and the local simulators for trials."""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

import click

from rotator.cli.common import load_app
from rotator.cli.exit import Exit
from rotator.errors import InputError, RotatorError


@click.command()
@click.pass_context
def run(ctx: click.Context) -> None:
    """The daemon: schedule policy rotations, advance rotations in flight, serve /healthz /readyz /metrics."""
    from rotator.daemon.service import Daemon

    app = load_app(ctx, daemon=True)
    ctx.exit(Daemon(ctx.obj["config"], ctx.obj["policies"], app).run())


@click.command()
@click.option("--ready", is_flag=True, help="ask /readyz (a tick went through) instead of /healthz (ticks happen)")
@click.option("--timeout", default=5.0, show_default=True, help="seconds to wait for an answer")
@click.pass_context
def health(ctx: click.Context, ready: bool, timeout: float) -> None:
    """Ask the local daemon, at its `daemon.listen`, whether it is healthy: exit 0 if so, 1 if not.

    For a container HEALTHCHECK or a probe script: it follows `daemon.listen` (rotator.yaml or
    ROTATOR_DAEMON__LISTEN) and reads no policy file.
    """
    import httpx

    from rotator.settings import config as config_module

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
    except httpx.ConnectError:
        click.echo(
            f"{url}: nothing listens there: is `rotator run` running, with daemon.listen {settings.daemon.listen}?",
            err=True,
        )
        ctx.exit(Exit.FAILED)
    except httpx.TimeoutException:
        click.echo(f"{url}: no answer within {timeout:g} s (the daemon may be stuck; its logs say more)", err=True)
        ctx.exit(Exit.FAILED)
    except httpx.HTTPError as exc:
        click.echo(f"{url}: {type(exc).__name__}: {exc}", err=True)
        ctx.exit(Exit.FAILED)
    click.echo(f"{url}: {answer.status_code} {answer.text.strip()}")
    if answer.status_code != 200:
        try:
            reason = answer.json().get("reason")
        except ValueError:
            reason = None
        what = "not ready" if ready else "unhealthy"
        click.echo(f"{what}: {reason or 'the daemon answered ' + str(answer.status_code)}", err=True)
    ctx.exit(Exit.OK if answer.status_code == 200 else Exit.FAILED)


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", "ports", multiple=True, help="NAME=PORT to fix a simulator's port")
def sandbox(host: str, ports: tuple[str, ...]) -> None:
    """Run local simulators of the providers; print `<provider> <base_url>` for each, until stopped."""
    try:
        from rotator_sandbox.server import SIMULATORS, serve_all
    except ImportError:
        click.echo(f"error: {SANDBOX_MISSING}", err=True)
        sys.exit(Exit.INPUT)

    from rotator import log

    log.configure(level="warning")
    fixed: dict[str, int] = {}
    for given in ports:
        name, _, port = given.partition("=")
        if name not in SIMULATORS or not port.isascii() or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise click.BadParameter(
                f"NAME=PORT with NAME one of {', '.join(SIMULATORS)} and PORT 0-65535 (0: any free port)",
                param_hint="--port",
            )
        fixed[name] = int(port)
    try:
        running = serve_all(host=host, ports=fixed)
    except OSError as exc:
        click.echo(f"error: the simulators cannot listen on {host}: {exc.strerror or exc}", err=True)
        sys.exit(Exit.INPUT)
    for r in running:
        click.echo(f"{r.name} {r.api_url}")
    sys.stdout.flush()
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    for r in running:
        r.stop()


@click.command()
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
