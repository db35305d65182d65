"""Process hygiene: tracebacks through the redactor, a notifier that outlives any error, a process
other processes of the same user cannot read, state files that are the owner's alone."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from rotator import log
from rotator.keys import secret
from rotator.notify import Notifier
from rotator.settings.models import NotificationTarget


def test_a_traceback_logged_through_stdlib_logging_is_redacted() -> None:
    """`exc_info` and `stack_info` text pass the redactor like the message does."""
    stream = io.StringIO()
    log.configure(level="debug", stream=stream)
    value = secret("opaque-admin-token-in-an-exception-0042").get_secret_value()
    try:
        raise RuntimeError(f"the server said: bad token {value}")
    except RuntimeError:
        logging.getLogger("some.library").error("call failed", exc_info=True, stack_info=True)
    out = stream.getvalue()
    assert "RuntimeError" in out and "Traceback" in out
    assert value not in out


def test_uncaught_exceptions_print_redacted(tmp_path: Path) -> None:
    """sys.excepthook and threading.excepthook print tracebacks through the redactor."""
    code = (
        "import threading; from rotator import log; from rotator.keys import secret\n"
        "log.configure(level='info')\n"
        "v = secret('opaque-uncaught-token-000123').get_secret_value()\n"
        "t = threading.Thread(target=lambda: (_ for _ in ()).throw(ValueError(v))); t.start(); t.join()\n"
        "raise ValueError('main ' + v)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 1
    assert "ValueError" in result.stderr and "exception in thread" in result.stderr
    assert "opaque-uncaught-token-000123" not in result.stderr


def test_the_notifier_survives_any_exception_and_counts_it(tmp_path: Path) -> None:
    """A delivery that fails with no HTTP error at all (its signing secret is missing) fails alone;
    the other target still gets the event, and the sender thread lives on."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    from rotator.plugin.settings import CredentialSource
    from rotator.runtime.background_http import serve_app
    from rotator.state.db import StateDB

    received: list[dict[str, Any]] = []

    async def hook(request: Request) -> Response:
        received.append(await request.json())
        return JSONResponse({})

    served = serve_app(Starlette(routes=[Route("/h", hook, methods=["POST"])]), host="127.0.0.1", port=0, name="h")
    db = StateDB(f"sqlite:///{tmp_path}/s.db")
    try:
        broken = NotificationTarget(
            url=f"{served.url}/h?broken", signing_secret=CredentialSource(env="RT_NO_SUCH_VARIABLE")
        )
        notifier = Notifier([broken, NotificationTarget(url=f"{served.url}/h")], db=lambda: db)
        notifier.start()
        notifier.emit("rotation.held", {"secret": "a"})
        notifier.flush()
        assert [r["secret"] for r in received] == ["a"]
        assert notifier.failures == 1
        assert notifier._thread is not None and notifier._thread.is_alive()
        notifier.stop()
    finally:
        served.stop()
        db.close()


def test_the_cli_process_is_not_dumpable() -> None:
    """PR_SET_DUMPABLE=0: no core dump, and /proc/<pid>/environ closed to other processes of the user."""
    code = (
        "from rotator.runtime import hardening; hardening.harden(); "
        "print(hardening.dumpable(), oct(__import__('os').umask(0)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["0", "0o77"]


def test_state_directory_and_database_are_private(tmp_path: Path) -> None:
    """Outside systemd too: state directory 0700, database 0600, whatever the caller's umask."""
    state = tmp_path / "state"
    env = {**os.environ, "STATE_DIRECTORY": str(state), "ROTATOR_CONFIG": str(tmp_path / "none.yaml")}
    (tmp_path / "policies").mkdir()
    (tmp_path / "none.yaml").write_text(f"policies_dir: {tmp_path / 'policies'}\n")
    old = os.umask(0o022)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "rotator", "audit", "verify"], env=env, capture_output=True, text=True, check=False
        )
    finally:
        os.umask(old)
    assert result.returncode == 0, result.stderr
    assert state.stat().st_mode & 0o777 == 0o700
    for name in ("rotator.db", "rotator.db-wal"):
        if (state / name).exists():
            assert (state / name).stat().st_mode & 0o777 == 0o600, name
