"""rotator.yaml plus ROTATOR_… environment overrides → typed settings.

Environment variables override the file: `ROTATOR_STATE__URL` sets `state.url`; a double
underscore separates levels, and provider or store names match with `-` written as `_`
(`ROTATOR_PROVIDERS__BRANDWAVE_PROD__BASE_URL`). `ROTATOR_CONFIG` names the file itself.
Admin credentials are never values in this file: it says where they come from (env, file).
"""

from __future__ import annotations

import fnmatch
import hashlib
import ipaddress
import json
import os
import re
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

from pydantic import Field, ValidationError, field_validator

from rotator import registry, yamlsource
from rotator.config_parts import (
    CredentialSource,
    HostPattern,
    ProviderSettings,
    StoreSettings,
    Strict,
    check_http_url,
    host_name_ok,
    plain_http,
)
from rotator.durations import PositiveDuration
from rotator.errors import InputError
from rotator.policy_rules import BUILT_IN, Policy
from rotator.stores.aws_settings import AwsStoreSettings
from rotator.tenancy import Team, check_names

ENV_PREFIX = "ROTATOR_"
_NOT_OVERRIDES = {"ROTATOR_CONFIG", "ROTATOR_FAILPOINTS", "ROTATOR_REPLICA_ID"}


if TYPE_CHECKING:
    ProviderInstance = ProviderSettings
    StoreInstance = StoreSettings
else:
    # one discriminated union over the installed types: an unknown `type:` is refused naming them
    ProviderInstance = Annotated[
        Union[tuple(t.settings for t in registry.providers().values())], Field(discriminator="type")  # noqa: UP007
    ]
    StoreInstance = Annotated[
        Union[tuple(t.settings for t in registry.stores().values())], Field(discriminator="type")  # noqa: UP007
    ]


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


class LogSettings(Strict):
    level: Literal["debug", "info", "warning", "error"] = "info"
    """The least severe log lines written; keys are never logged at any level."""
    format: Literal["auto", "json", "console"] = "auto"
    """`auto`: readable lines when stderr is a terminal, JSON otherwise (systemd, containers, pipes)."""


class EngineSettings(Strict):
    probe_deadline: PositiveDuration = timedelta(minutes=2)
    """How long a new key may keep being refused before the rotation rolls back."""
    verify_deadline: PositiveDuration = timedelta(minutes=10)
    """How long after revoking the old key it may still be accepted before the rotation is held."""
    verify_interval: PositiveDuration = timedelta(seconds=5)
    """How often a revoked old key is probed again until the provider refuses it."""
    retry_base: PositiveDuration = timedelta(seconds=2)
    """The first wait before retrying a step after a temporary error (429, 5xx, timeout); it doubles each time."""
    retry_max: PositiveDuration = timedelta(minutes=5)
    """The longest wait between retries of a step (a provider's Retry-After is followed instead)."""
    step_deadline: PositiveDuration = timedelta(minutes=30)
    """A step that keeps failing temporarily for this long is treated as failed."""
    hold_interval: PositiveDuration = timedelta(minutes=5)
    """How often a held rotation (stopped after promotion, old key kept) is tried again; for a secret
    whose rotations keep failing, the first wait before another, doubling up to a day."""
    operator_poll: PositiveDuration = timedelta(seconds=30)
    """How often to probe an old key an operator was asked to revoke."""
    gate_poll: PositiveDuration = timedelta(seconds=30)
    """How often the cutover gate asks consumers and the provider again."""
    hook_timeout: PositiveDuration = timedelta(seconds=10)
    """The whole of one hook call: connecting, sending and reading the answer (or a command's run)."""
    lease_ttl: PositiveDuration = timedelta(minutes=2)
    """How long a rotation stays claimed by a process that stops renewing its claim (it died): then
    another process or replica takes it over. PostgreSQL's lock and statement timeouts follow from it."""


class DaemonSettings(Strict):
    listen: str = "127.0.0.1:9464"
    """host:port of /healthz, /readyz and /metrics (`[::1]:9464` for IPv6); loopback unless you mean otherwise."""

    @field_validator("listen")
    @classmethod
    def _host_and_port(cls, value: str) -> str:
        host_port(value)
        return value

    tick: PositiveDuration = timedelta(seconds=5)
    """How often the daemon looks for due rotations and starts policy rotations."""
    workers: int = Field(default=4, ge=1, le=64)
    """Rotations advanced at the same time."""


_HOSTNAME = re.compile(
    r"(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
)


def host_port(listen: str) -> tuple[str, int]:
    """`host:port` or `[v6]:port` → (host, port); ValueError saying what is wrong."""
    form = "give host:port, e.g. 127.0.0.1:9464 or [::1]:9464"
    host, colon, port = listen.rpartition(":")
    if not colon or not host or not re.fullmatch("[0-9]{1,5}", port):
        raise ValueError(f"not host:port; {form}")
    if not 0 <= int(port) <= 65535:
        raise ValueError(f"port {port} is out of range (0-65535)")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{host!r} is not an IPv6 address; {form}") from None
    elif re.fullmatch(r"[0-9.]+", host):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            raise ValueError(f"{host!r} is not an IPv4 address; {form}") from None
    elif not _HOSTNAME.fullmatch(host):
        raise ValueError(f"{host!r} is not a host name or address; {form}")
    return host, int(port)


class NotificationTarget(Strict):
    url: str
    """A webhook URL; treat it as a secret (Slack's are): it is never logged."""
    format: Literal["json", "slack"] = "json"
    """`json`: rotator's own JSON body; `slack`: a message for a Slack incoming webhook."""
    events: list[Literal["started", "completed", "failed", "held", "operator_action", "upcoming"]] = [
        "started",
        "completed",
        "failed",
        "held",
        "operator_action",
        "upcoming",
    ]
    """The events sent to this URL (`upcoming`: a rotation is due within the policy's `notify_before`)."""
    signing_secret: CredentialSource | None = None
    """HMAC-SHA256 key (env or file) for the `X-Rotator-Signature` header, so a receiver can verify the sender."""

    @field_validator("url")
    @classmethod
    def _http(cls, value: str) -> str:
        try:
            check_http_url(value)
        except ValueError:
            # what is wrong is not quoted: a notification URL may itself be the secret (Slack's)
            raise ValueError(
                "a notification url is an http(s) URL with a host name or address and a port in range"
            ) from None
        return value

    def key(self) -> str:
        """A stable name for this target that does not reveal its URL (Slack's URLs are secrets)."""
        return hashlib.sha256(self.url.encode()).hexdigest()[:16]


class CommandHook(Strict):
    """A command a policy file may run as a consumer hook, by name: only rotator.yaml says what runs."""

    command: list[str] = Field(min_length=1)
    """The program (an absolute path) and its arguments, run without a shell and with an empty PATH."""

    @field_validator("command")
    @classmethod
    def _absolute(cls, value: list[str]) -> list[str]:
        if not Path(value[0]).is_absolute():
            raise ValueError(f"{value[0]!r}: give the program's absolute path (hooks run with an empty PATH)")
        return value


class HooksSettings(Strict):
    """What consumer hooks in policy files may do: commands by name, HTTP only to these hosts."""

    commands: dict[str, CommandHook] = {}
    """Commands policy files may run as consumer hooks, by name (`confirm: {command: NAME}`)."""
    allowed_hosts: list[HostPattern] = []
    """`host` or `host:port` patterns (`*.internal`); an HTTP hook to any other host is refused."""
    credentials: dict[str, CredentialSource] = {}
    """Header values a policy may name (`{credential: NAME}`), read from env or file."""

    @field_validator("credentials")
    @classmethod
    def _not_current(cls, value: dict[str, CredentialSource]) -> dict[str, CredentialSource]:
        for name, source in value.items():
            if source.current:
                raise ValueError(f"hook credential {name!r} comes from env or file, not current")
        return value

    def allows(self, host: str, port: int | None) -> bool:
        candidates = [host] + ([f"{host}:{port}"] if port is not None else [])
        return any(fnmatch.fnmatchcase(c, p.lower()) for c in candidates for p in self.allowed_hosts)

    def for_team(self, team: Team) -> HooksSettings:
        """What one team's hooks may use: its own commands and credentials, its hosts and everyone's."""
        return HooksSettings(
            commands={n: c for n, c in self.commands.items() if n in team.commands},
            credentials={n: c for n, c in self.credentials.items() if n in team.credentials},
            allowed_hosts=[*self.allowed_hosts, *team.allowed_hosts],
        )


class Settings(Strict):
    state: StateSettings = StateSettings()
    """The state database: every rotation's progress, the leases, the audit trail."""
    policies_dir: Path = Path("policies")
    """The directory of policy files (`*.yaml`), relative to rotator.yaml's own directory."""

    @field_validator("policies_dir")
    @classmethod
    def _a_directory_named(cls, value: Path) -> Path:
        # an empty value reads as ".": the directory of rotator.yaml, with whatever else lies there
        if str(value) in ("", "."):
            raise ValueError("policies_dir is empty; name the directory of policy files (e.g. policies)")
        return value

    log: LogSettings = LogSettings()
    """What is logged, and how: logs go to stderr."""
    providers: dict[str, ProviderInstance] = {}
    """The provider instances policy files name, each with its type, admin credential and grants."""
    stores: dict[str, StoreInstance] = {"aws": AwsStoreSettings()}
    """The secret stores policy files name; by default one, `aws` (AWS Secrets Manager, us-east-1)."""
    engine: EngineSettings = EngineSettings()
    """How the steps of a rotation are timed, retried and given up."""
    daemon: DaemonSettings = DaemonSettings()
    """`rotator run`: where it serves health and metrics, how often it looks for work."""
    notifications: list[NotificationTarget] = []
    """Webhooks told of each rotation's events, at least once."""
    hooks: HooksSettings = HooksSettings()
    """What consumer hooks in policy files may do."""
    teams: dict[str, Team] = {}
    """Who owns which policy files and what their secrets may use; none: one team owns every file."""
    policies: dict[Literal["incident", "offboarding"], Policy] = {}
    """The built-in policies `incident` and `offboarding`, tuned by the operator; policy files may name
    them, never define them."""

    def built_in_policies(self) -> dict[str, Policy]:
        return {**BUILT_IN, **{str(name): policy for name, policy in self.policies.items()}}

    def hooks_for(self, team: str | None) -> HooksSettings:
        """The hooks a team's secrets may use; `None` (no teams configured): all of them."""
        return self.hooks if team is None else self.hooks.for_team(self.teams[team])

    def state_dir(self) -> Path:
        """state.directory, $STATE_DIRECTORY (systemd) or ~/.local/state/rotator, made private (0700)
        to this user."""
        base = self.state.directory or Path(
            os.environ.get("STATE_DIRECTORY") or Path.home() / ".local" / "state" / "rotator"
        )
        refuse_foreign(base)
        base.mkdir(mode=0o700, parents=True, exist_ok=True)
        if base.stat().st_uid == os.geteuid() and base.stat().st_mode & 0o077:
            base.chmod(0o700)
        return base

    def state_url(self) -> str:
        if not self.state.url:
            return f"sqlite:///{self.state_dir() / 'rotator.db'}"
        from sqlalchemy.engine import make_url

        url = make_url(self.state.url)
        if url.get_backend_name() == "sqlite" and url.database and not url.database.startswith("file:"):
            refuse_foreign(Path(url.database).parent)
        return self.state.url


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


def transport_warnings(settings: Settings) -> list[str]:
    """Settings that send credentials where others could read or replace them: plain HTTP off
    this host, Vault without TLS verification."""
    notes = []
    for name, provider in sorted(settings.providers.items()):
        if plain_http(provider.endpoint()):
            notes.append(f"providers.{name}.base_url is plain http to another host: keys travel unencrypted")
    for name, store in sorted(settings.stores.items()):
        notes.extend(store.transport_warnings(name))
    return notes


def _apply_env(
    data: dict[str, Any], environ: dict[str, str], overridden: dict[tuple[str, ...], str] | None = None
) -> dict[str, Any]:
    """Apply ROTATOR_… overrides to `data`; `overridden` learns which setting each variable set."""
    for name, value in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX) or name in _NOT_OVERRIDES:
            continue
        path = [part.lower() for part in name[len(ENV_PREFIX) :].split("__")]
        if "" in path:
            raise InputError([f"environment variable {name}: an empty level between double underscores"])
        if path[0] not in Settings.model_fields:
            known = ", ".join(f"{ENV_PREFIX}{f.upper()}" for f in Settings.model_fields)
            raise InputError([f"environment variable {name}: no such setting (overrides start with {known})"])
        node = data
        keys: list[str] = []
        for part in path[:-1]:
            match = next((k for k in node if str(k).replace("-", "_").lower() == part), part)
            keys.append(match)
            node = node.setdefault(match, {})
            if not isinstance(node, dict):
                raise InputError([f"environment variable {name}: {part} is not a section"])
        node[path[-1]] = _env_value(name, value)
        if (bad := yamlsource.control_character(node[path[-1]])) is not None:
            raise InputError([f"environment variable {name}: control character U+{ord(bad):04X}"])
        if overridden is not None:
            overridden[(*keys, path[-1])] = name
    return data


def _env_value(name: str, value: str) -> Any:
    """A list or a mapping comes as JSON (`["a.example.com"]`); anything else is the text itself
    (`[::1]:9464` is no JSON, and stays a listen address)."""
    if value[:1] in ("[", "{"):
        try:
            parsed = json.loads(value)
        except (ValueError, RecursionError):
            return value
        if yamlsource.nesting(parsed) > yamlsource.MAX_DEPTH:
            raise InputError([f"environment variable {name}: nested deeper than {yamlsource.MAX_DEPTH} levels"])
        return parsed
    return value


def _plain(node: Any) -> Any:
    if isinstance(node, dict):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    return node


def _team_problems(settings: Settings, doc: Any, path: Path | None) -> list[str]:
    """A team may be allowed only what rotator.yaml defines."""
    where = path or "(environment)"
    problems = [
        f"{where}:{yamlsource.line_of(doc, ('teams', name))}: teams.{name}: {problem}"
        for name, problem in check_names(settings.teams)
    ]
    defined = {
        "providers": (set(settings.providers), "providers"),
        "commands": (set(settings.hooks.commands), "hooks.commands"),
        "credentials": (set(settings.hooks.credentials), "hooks.credentials"),
    }
    for name, team in settings.teams.items():
        for field, (known, section) in defined.items():
            for index, value in enumerate(getattr(team, field)):
                if value not in known:
                    line = yamlsource.line_of(doc, ("teams", name, field, index))
                    problems.append(
                        f"{where}:{line}: teams.{name}.{field} names {value!r}, which is not in {section} "
                        f"(known: {', '.join(sorted(known)) or 'none'})"
                    )
    return problems


def _sqlite_beside(data: Any, directory: Path) -> None:
    """A relative SQLite path in the file's state.url names a file beside rotator.yaml, as
    policies_dir and state.directory do, not one in whatever directory a command runs from (which
    made a second, empty database for `rotator --config ~/trial/rotator.yaml status` run elsewhere)."""
    state: Any = data.get("state") if isinstance(data, dict) else None
    url = state.get("url") if isinstance(state, dict) else None
    if not isinstance(url, str) or not url.startswith("sqlite"):
        return
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return  # the validator says what is wrong with it
    database = parsed.database or ""
    if database and database != ":memory:" and not database.startswith("file:") and not Path(database).is_absolute():
        state["url"] = parsed.set(database=str(directory / database)).render_as_string(hide_password=False)


def where_set(path: Path | None, keys: tuple[str, ...], environ: dict[str, str] | None = None) -> str:
    """Where a setting's value came from, for an error found after loading: its variable, or file:line."""
    variable = ENV_PREFIX + "__".join(k.upper().replace("-", "_") for k in keys)
    if variable in (os.environ if environ is None else environ):
        return f"environment variable {variable}"
    if path is None:
        return "the embedded defaults"
    try:
        return f"{path}:{yamlsource.line_of(yamlsource.load(path, multiline=True), keys)}"
    except InputError:
        return str(path)


def config_path(explicit: Path | None = None) -> Path | None:
    """The rotator.yaml in force: --config, $ROTATOR_CONFIG, ./rotator.yaml, /etc/rotator/rotator.yaml."""
    if explicit is not None:
        return explicit
    if env := os.environ.get("ROTATOR_CONFIG"):
        return Path(env)
    for candidate in (Path("rotator.yaml"), Path("/etc/rotator/rotator.yaml")):
        try:
            if candidate.is_file():
                return candidate
        except PermissionError:
            # a directory this user may not look into (root's home, for `sudo -u rotator`) holds
            # no rotator.yaml of theirs: look further
            continue
    return None


def load(path: Path | None = None, environ: dict[str, str] | None = None) -> Settings:
    """Read settings; with no file at all, the embedded defaults (SQLite state) apply.

    Raises InputError with file:line problems, and names the environment variable for overrides.
    """
    environ = dict(os.environ if environ is None else environ)
    doc: Any = yamlsource.load(path, multiline=True) if path is not None else None
    overridden: dict[tuple[str, ...], str] = {}
    data = _apply_env(_plain(doc or {}), environ, overridden)
    if path is not None and ("state", "url") not in overridden:
        _sqlite_beside(data, path.parent.absolute())
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        problems = yamlsource.problems_from(
            exc, doc, path or Path("(environment)"), overridden=overridden, data=data, model=Settings
        )
        raise InputError(problems) from None
    problems = [
        f"{path or '(environment)'}:{yamlsource.line_of(doc, ('providers', name, field))}: "
        f"providers.{name}.{field} names store {ref.instance!r}, which is not "
        f"in stores (known: {', '.join(sorted(settings.stores)) or 'none'})"
        for name, p in settings.providers.items()
        for field, ref in p.store_refs().items()
        if ref.instance not in settings.stores
    ]
    problems += _team_problems(settings, doc, path)
    if problems:
        raise InputError(problems)
    if path is not None and not settings.policies_dir.is_absolute():
        settings = settings.model_copy(update={"policies_dir": path.parent / settings.policies_dir})
    directory = settings.state.directory
    if path is not None and directory is not None and not directory.is_absolute():
        state = settings.state.model_copy(update={"directory": path.parent / directory})
        settings = settings.model_copy(update={"state": state})
    return settings
