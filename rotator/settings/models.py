"""The settings rotator.yaml holds, as typed models: one per section, and Settings for the whole.

Admin credentials are never values here: the settings say where they come from (env, file).
"""

from __future__ import annotations

import fnmatch
import hashlib
import ipaddress
import os
import re
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal, Union

from pydantic import Field, field_validator, model_validator

from rotator.durations import PositiveDuration
from rotator.plugin import registry
from rotator.plugin.settings import (
    CredentialSource,
    HostPattern,
    ProviderSettings,
    StoreSettings,
    Strict,
    check_http_url,
    plain_http,
)
from rotator.policy.rules import BUILT_IN, Policy
from rotator.settings import grants
from rotator.settings.database import StateSettings, refuse_foreign
from rotator.settings.tenancy import Team
from rotator.stores.aws_settings import AwsStoreSettings

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
    """Rotations advanced at the same time; past eight, only as many as leave the process's CPU
    under 90 % of one core (measured each half second)."""


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

    @model_validator(mode="after")
    def _grants_resolved(self) -> Settings:
        """Every grant with its store instance and all its fields, as the store's type has them
        (settings/grants.py); one that cannot be resolved grants nothing (loading names it)."""
        providers, _ = grants.resolved(self.providers, self.store_types())
        object.__setattr__(self, "providers", providers)  # frozen: set once, here, while validated
        return self

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

    def store_types(self) -> dict[str, str]:
        """Each store instance's type name, by instance."""
        return {name: store.type for name, store in self.stores.items()}

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
