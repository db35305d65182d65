"""`state:` of rotator.yaml: which database holds rotator's state, and how it is reached."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import field_validator

from rotator.errors import InputError
from rotator.plugin.settings import (
    Strict,
    host_name_ok,
)


class StateSettings(Strict):
    directory: Path | None = None
    """Where rotator keeps its files (the SQLite database by default, Boltly's refresh tokens); unset:
    $STATE_DIRECTORY (systemd's StateDirectory=), else ~/.local/state/rotator. A host's daemon and
    the commands an operator runs there must name the same one: rotator.example.yaml sets it."""
    url: str = ""
    """The database URL (`sqlite:////var/lib/rotator/rotator.db`, `postgresql+psycopg://rotator@db/rotator`);
    empty: SQLite, `rotator.db` in `$STATE_DIRECTORY` or `~/.local/state/rotator/`. Checked at validate."""
    auto_upgrade: bool = False
    """Upgrade an older state database's schema at start instead of refusing it (`rotator db upgrade`)."""

    @field_validator("directory")
    @classmethod
    def _directory(cls, value: Path | None) -> Path | None:
        if value is not None and (not str(value) or str(value) == "."):
            raise ValueError("state.directory is empty; name a directory (e.g. /var/lib/rotator) or leave it out")
        if value is not None and value.exists() and not value.is_dir():
            raise ValueError(f"{value} is not a directory")
        return value

    @field_validator("url")
    @classmethod
    def _openable(cls, value: str) -> str:
        # the value itself is never quoted: a PostgreSQL URL may carry a password
        if not value:
            return value
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError, NoSuchModuleError

        try:
            url = make_url(value)
        except (ArgumentError, ValueError):
            raise ValueError(
                "not a database URL; e.g. sqlite:////var/lib/rotator/rotator.db or "
                "postgresql+psycopg://rotator@db.internal/rotator"
            ) from None
        try:
            dialect = url.get_dialect()
        except NoSuchModuleError:
            raise ValueError(f"unknown database kind {url.drivername!r} (sqlite or postgresql+psycopg)") from None
        try:
            dialect.import_dbapi()
        except ImportError as exc:
            raise ValueError(
                f"the {url.drivername} driver is not installed ({exc.name}); "
                "for PostgreSQL: pip install 'rotator[postgres]'"
            ) from None
        if url.port is not None and not 0 < url.port < 65536:
            raise ValueError(f"port {url.port} is out of range (1-65535)")
        if url.host and not url.host.startswith("/") and not host_name_ok(url.host):
            raise ValueError(f"host {url.host[:80]!r} is not a host name or an IP address")
        for option, allowed in _LIBPQ_CHOICES.items():
            given = url.query.get(option)
            if isinstance(given, str) and given not in allowed:
                raise ValueError(f"{option}={given[:40]!r}: libpq knows {', '.join(allowed)}")
        database = url.database or ""
        if url.get_backend_name() == "sqlite" and (not database or database == ":memory:" or "mode=memory" in database):
            raise ValueError("an in-memory SQLite database: every rotation's state would be lost at exit; name a file")
        if (
            url.get_backend_name() == "sqlite"
            and database
            and database != ":memory:"
            and not database.startswith("file:")
        ):
            directory = Path(database).parent
            if not directory.is_dir():
                raise ValueError(f"the directory {directory} of the SQLite database does not exist")
            if Path(database).exists() and not Path(database).is_file():
                raise ValueError(f"{database} is not a regular file; name a file for the SQLite database")
        if url.get_backend_name() == "sqlite" and url.query:
            # rotator sets SQLite's options itself (WAL, busy timeout, one connection shared across
            # threads): `check_same_thread=true` would break that, a misspelt one is silently ignored
            given = ", ".join(sorted(url.query))
            raise ValueError(f"query arguments ({given}) on a SQLite URL: rotator sets SQLite's options itself")
        try:
            _, params = dialect().create_connect_args(url)
            if url.get_driver_name() == "psycopg":
                from psycopg.conninfo import make_conninfo

                make_conninfo("", **params)  # libpq's own parser: an unknown option is refused here
        except Exception as exc:
            # the driver's reading of its arguments; its message may quote the password, so only the option
            bad = next((k for k in url.query if k in str(exc)), None)
            raise ValueError(
                f"the {url.drivername} driver refuses " + (f"the option {bad!r}" if bad else "its arguments")
            ) from None
        return value


_LIBPQ_CHOICES = {
    "sslmode": ("disable", "allow", "prefer", "require", "verify-ca", "verify-full"),
    "target_session_attrs": ("any", "read-write", "read-only", "primary", "standby", "prefer-standby"),
    "gssencmode": ("disable", "prefer", "require"),
    "channel_binding": ("disable", "prefer", "require"),
}
"""Options whose values libpq checks only when it connects: a typo here is found at validate."""


def refuse_foreign(directory: Path) -> None:
    """As root, refuse a state directory another user owns (the daemon's, under `User=rotator` or
    in the image): SQLite would leave root-owned journal files there that the daemon can then
    neither write nor remove, and stop it."""
    if os.geteuid() != 0:
        return
    try:
        owner = directory.stat().st_uid
    except OSError:
        return
    if owner != 0:
        import pwd

        try:
            name = pwd.getpwuid(owner).pw_name
        except KeyError:
            name = str(owner)
        raise InputError(
            [
                f"the state directory {directory} belongs to user {name}: as root, rotator would leave "
                f"files there that user cannot write; run it as {name} (sudo -u {name} rotator ...)"
            ]
        )
