"""Logging: structlog, JSON by default, and a redactor that every line passes through.

Redaction works on two levels: every secret value rotator has seen (registered through
`remember_secret`) is replaced wherever it appears, and strings shaped like provider keys,
refresh tokens, JWTs or bearer headers are masked even if they were never registered.
Third-party loggers that print request URLs or bodies (httpx, httpcore, botocore, urllib3) are
held at WARNING whatever the configured level, and their records pass the same redactor.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
import traceback
from collections.abc import Iterable, MutableMapping
from importlib.metadata import entry_points
from typing import Any, TextIO, cast

import structlog

MASK = "[REDACTED]"

_ANY_VENDOR = (
    r"eyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*"  # a JWT
    r"|(?i:bearer)\s+[A-Za-z0-9_\-\.=]+"
)
_KEY_SHAPES = re.compile(_ANY_VENDOR)
"""What a key or token looks like: any vendor's (JWTs, bearer headers), and the installed provider
types' own prefixes (`mask_key_prefixes`; `_vendor_shapes` adds them before the first redaction)."""
_prefixes: frozenset[str] = frozenset()
_types_asked = False
_types_lock = threading.RLock()
_CHATTY_LIBRARIES = (
    "httpx",
    "httpcore",
    "botocore",
    "boto3",
    "urllib3",
    "s3transfer",
    "hvac",
    "uvicorn",
    "werkzeug",
    "apscheduler",
    "alembic",
)

_PREFIX = 6
"""The shortest secret remembered; remembered secrets are found by their first _PREFIX characters."""
_known: dict[str, tuple[str, ...]] = {}
"""Every secret value remembered, by its first _PREFIX characters. Tuples, replaced whole when one
is added, so that a reader in another thread never sees one change under it."""
_known_lock = threading.Lock()


def mask_key_prefixes(prefixes: Iterable[str]) -> None:
    """From now on, mask text that begins with one of `prefixes` and goes on for 8 key characters."""
    global _KEY_SHAPES, _prefixes
    with _known_lock:
        wanted = _prefixes | {p for p in prefixes if p}
        if wanted == _prefixes:
            return
        _prefixes = frozenset(wanted)
        vendors = "|".join(re.escape(p) for p in sorted(_prefixes, key=len, reverse=True))
        _KEY_SHAPES = re.compile(f"(?:{vendors})[A-Za-z0-9_\\-]{{8,}}|{_ANY_VENDOR}")


def remember_secret(value: str) -> None:
    """Register a secret value so that it is masked in every later log line."""
    if len(value) >= _PREFIX:
        with _known_lock:
            bucket = _known.get(value[:_PREFIX], ())
            if value not in bucket:
                _known[value[:_PREFIX]] = (*bucket, value)


def _vendor_shapes() -> re.Pattern[str]:
    """The key shapes, the installed provider types' prefixes among them from the first redaction
    on, whatever ran before it: a traceback of a command that never read its settings is masked
    like any log line. A type that cannot be loaded leaves the others' (and the generic shapes)."""
    global _types_asked
    if not _types_asked:
        with _types_lock:
            if not _types_asked:
                _types_asked = True  # first: loading the types may log, and that must not recurse
                # straight from the entry points, not through plugin.registry: log is below everything
                prefixes: list[str] = []
                for point in entry_points(group="rotator.providers"):
                    try:
                        prefixes.extend(getattr(point.load(), "key_prefixes", ()))
                    except Exception:  # noqa: S112 - a broken plugin must not stop redaction
                        continue
                mask_key_prefixes(prefixes)
    return _KEY_SHAPES


def redact(text: str) -> str:
    if _known:
        text = _mask_known(text)
    return _vendor_shapes().sub(MASK, text)


def _mask_known(text: str) -> str:
    """`text` with every character a remembered secret covers masked, found with one look-up per
    position: an incident over thousands of keys remembers thousands of values, and looking for
    each of them in every string of every log line became most of the incident's CPU.
    Occurrences that overlap (two secrets sharing characters, a secret repeating into itself)
    become one mask: replacing one value after another would cut the other and leave part of it
    in the line, and which part would depend on the order of a set."""
    out: list[str] = []
    kept = 0  # text[:kept] is in `out`
    cover = (0, 0)  # the masked span being grown
    known = _known.get
    for start in range(len(text) - _PREFIX + 1):
        bucket = known(text[start : start + _PREFIX])
        if bucket is None:
            continue
        end = max((start + len(value) for value in bucket if text.startswith(value, start)), default=start)
        if end == start:
            continue
        if start < cover[1]:
            cover = (cover[0], max(cover[1], end))
            continue
        if cover[1] > cover[0]:
            out += (text[kept : cover[0]], MASK)
            kept = cover[1]
        cover = (start, end)
    if cover[1] > cover[0]:
        out += (text[kept : cover[0]], MASK)
        kept = cover[1]
    return "".join(out) + text[kept:] if out else text


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _redact_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_value(v) for v in value]
    if isinstance(value, BaseException):
        return redact(f"{type(value).__name__}: {value}")
    return value


def redaction_processor(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    return {k: _redact_value(v) for k, v in event_dict.items()}


class _RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        return True


class _RedactingFormatter(logging.Formatter):
    """Redacts the whole formatted record: a traceback (`exc_info`) or `stack_info` included."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def _print_redacted(kind: type[BaseException], value: BaseException, tb: Any) -> None:
    sys.stderr.write(redact("".join(traceback.format_exception(kind, value, tb))))


def _thread_hook(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return
    name = args.thread.name if args.thread is not None else "?"
    sys.stderr.write(f"exception in thread {name}:\n")
    _print_redacted(args.exc_type, args.exc_value or args.exc_type(), args.exc_traceback)


def install_excepthooks() -> None:
    """Uncaught exceptions (main thread or any other) print their traceback through the redactor."""
    sys.excepthook = _print_redacted
    threading.excepthook = _thread_hook


class _CurrentStderr:
    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure(*, level: str = "info", fmt: str = "json", stream: Any = None) -> None:
    """Set up structlog and the standard library's logging; safe to call more than once."""
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        numeric = logging.INFO
    renderer: Any = (
        structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer(colors=False)
    )
    # without a stream: whatever sys.stderr is when a line is written, so that a live table (rich's
    # Live, which swaps sys.stderr while it draws) prints log lines above itself, not through it
    out = stream or cast(TextIO, _CurrentStderr())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redaction_processor,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(out)
    handler.addFilter(_RedactingFilter())
    handler.setFormatter(_RedactingFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    for name in _CHATTY_LIBRARIES:
        logging.getLogger(name).setLevel(max(numeric, logging.WARNING))
    install_excepthooks()


def get(name: str | None = None) -> Any:
    return structlog.get_logger(name)
