"""rotator.yaml plus ROTATOR_… environment overrides → typed settings.

Environment variables override the file: `ROTATOR_STATE__URL` sets `state.url`; a double
underscore separates levels, and provider or store names match with `-` written as `_`
(`ROTATOR_PROVIDERS__BRANDWAVE_PROD__BASE_URL`). `ROTATOR_CONFIG` names the file itself.
Admin credentials are never values in this file: it says where they come from (env, file).
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from rotator import yamlsource
from rotator.durations import Duration
from rotator.errors import InputError

ENV_PREFIX = "ROTATOR_"
_NOT_OVERRIDES = {"ROTATOR_CONFIG", "ROTATOR_FAILPOINTS"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CredentialSource(_Strict):
    """Where an admin credential comes from. `current: true` means the secret's own current key."""

    env: str | None = None
    file: Path | None = None
    current: bool = False

    @model_validator(mode="after")
    def _exactly_one(self) -> CredentialSource:
        chosen = [self.env is not None, self.file is not None, self.current]
        if sum(chosen) != 1:
            raise ValueError("give exactly one of env, file or current: true")
        return self


class BrandwaveInstance(_Strict):
    type: Literal["brandwave"]
    base_url: str = "https://api.gobrandwave.com"
    admin_token: CredentialSource = CredentialSource(current=True)
    timeout: Duration = timedelta(seconds=10)


class BoltlyInstance(_Strict):
    """Boltly: keys are made with a user's JWT. The refresh token rotates on every refresh, so
    rotator keeps it in a file of its own (written atomically, mode 0600) the moment it changes."""

    type: Literal["boltly"]
    base_url: str = "https://api.boltly.online"
    email: str
    password: CredentialSource | None = None
    """Used when no refresh token works (first start, or a crash lost the newest one)."""
    refresh_token_file: Path | None = None
    """Default: <state directory>/<instance>.refresh"""
    timeout: Duration = timedelta(seconds=10)


class OperatorInstance(_Strict):
    """A provider whose keys only a person can make and revoke, in a dashboard."""

    type: Literal["blueticks", "texting-blue", "goblue"]
    base_url: str | None = None
    """Default: the vendor's documented base URL."""
    dashboard: str | None = None
    """Where the operator makes keys, shown in the instructions. Default: the vendor's documented place."""
    timeout: Duration = timedelta(seconds=10)


ProviderInstance = Annotated[BrandwaveInstance | BoltlyInstance | OperatorInstance, Field(discriminator="type")]


class AwsStoreSettings(_Strict):
    type: Literal["aws"] = "aws"
    region: str = "us-east-1"
    endpoint_url: str | None = None
    timeout: Duration = timedelta(seconds=10)


class VaultAppRole(_Strict):
    role_id: str
    secret_id: CredentialSource
    mount: str = "approle"


class VaultAuth(_Strict):
    """Exactly one way to log in: a token (from env or file), or AppRole."""

    token: CredentialSource | None = None
    approle: VaultAppRole | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> VaultAuth:
        if (self.token is None) == (self.approle is None):
            raise ValueError("give exactly one of token or approle")
        if self.token is not None and self.token.current:
            raise ValueError("a Vault token comes from env or file, not current")
        return self


class VaultStoreSettings(_Strict):
    type: Literal["vault"]
    url: str = "http://127.0.0.1:8200"
    auth: VaultAuth = VaultAuth(token=CredentialSource(env="VAULT_TOKEN"))
    namespace: str | None = None
    pending_mount: str = "secret"
    pending_prefix: str = "rotator-pending"
    """Where new keys wait before promotion: a path applications do not read."""
    verify: bool = True
    ca_file: Path | None = None
    timeout: Duration = timedelta(seconds=10)


StoreSettings = Annotated[AwsStoreSettings | VaultStoreSettings, Field(discriminator="type")]


class StateSettings(_Strict):
    url: str = ""


class LogSettings(_Strict):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["json", "console"] = "json"


class EngineSettings(_Strict):
    probe_deadline: Duration = timedelta(minutes=2)
    """How long a new key may keep being refused before the rotation rolls back."""
    verify_deadline: Duration = timedelta(minutes=10)
    """How long after revoking the old key it may still be accepted before the rotation is held."""
    verify_interval: Duration = timedelta(seconds=5)
    retry_base: Duration = timedelta(seconds=2)
    retry_max: Duration = timedelta(minutes=5)
    step_deadline: Duration = timedelta(minutes=30)
    """A step that keeps failing temporarily for this long is treated as failed."""
    hold_interval: Duration = timedelta(minutes=5)
    operator_poll: Duration = timedelta(seconds=30)
    gate_poll: Duration = timedelta(seconds=30)
    """How often the cutover gate asks consumers and the provider again."""
    hook_timeout: Duration = timedelta(seconds=10)
    """How often to probe an old key an operator was asked to revoke."""
    lease_ttl: Duration = timedelta(minutes=2)


class DaemonSettings(_Strict):
    listen: str = "127.0.0.1:9464"
    """host:port of /healthz, /readyz and /metrics; loopback unless you mean otherwise."""
    tick: Duration = timedelta(seconds=5)
    """How often the daemon looks for due rotations and starts policy rotations."""
    workers: int = Field(default=4, ge=1, le=64)
    """Rotations advanced at the same time."""


class NotificationTarget(_Strict):
    url: str
    """A webhook URL; treat it as a secret (Slack's are): it is never logged."""
    format: Literal["json", "slack"] = "json"
    events: list[Literal["started", "completed", "failed", "held", "operator_action", "upcoming"]] = [
        "started",
        "completed",
        "failed",
        "held",
        "operator_action",
        "upcoming",
    ]


class Settings(_Strict):
    state: StateSettings = StateSettings()
    policies_dir: Path = Path("policies")
    log: LogSettings = LogSettings()
    providers: dict[str, ProviderInstance] = {}
    stores: dict[str, StoreSettings] = {"aws": AwsStoreSettings()}
    engine: EngineSettings = EngineSettings()
    daemon: DaemonSettings = DaemonSettings()
    notifications: list[NotificationTarget] = []

    def state_dir(self) -> Path:
        base = Path(os.environ.get("STATE_DIRECTORY") or Path.home() / ".local" / "state" / "rotator")
        base.mkdir(parents=True, exist_ok=True)
        return base

    def state_url(self) -> str:
        return self.state.url or f"sqlite:///{self.state_dir() / 'rotator.db'}"


def _apply_env(data: dict[str, Any], environ: dict[str, str]) -> dict[str, Any]:
    for name, value in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX) or name in _NOT_OVERRIDES:
            continue
        path = [part.lower() for part in name[len(ENV_PREFIX) :].split("__")]
        if path[0] not in Settings.model_fields:
            known = ", ".join(f"{ENV_PREFIX}{f.upper()}" for f in Settings.model_fields)
            raise InputError([f"environment variable {name}: no such setting (overrides start with {known})"])
        node = data
        for part in path[:-1]:
            match = next((k for k in node if str(k).replace("-", "_").lower() == part), part)
            node = node.setdefault(match, {})
            if not isinstance(node, dict):
                raise InputError([f"environment {name}: {part} is not a section"])
        node[path[-1]] = value
    return data


def _plain(node: Any) -> Any:
    if isinstance(node, dict):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    return node


def config_path(explicit: Path | None = None) -> Path | None:
    """The rotator.yaml in force: --config, $ROTATOR_CONFIG, ./rotator.yaml, /etc/rotator/rotator.yaml."""
    if explicit is not None:
        return explicit
    if env := os.environ.get("ROTATOR_CONFIG"):
        return Path(env)
    for candidate in (Path("rotator.yaml"), Path("/etc/rotator/rotator.yaml")):
        if candidate.is_file():
            return candidate
    return None


def load(path: Path | None = None, environ: dict[str, str] | None = None) -> Settings:
    """Read settings; with no file at all, the embedded defaults (SQLite state) apply.

    Raises InputError with file:line problems, and names the environment variable for overrides.
    """
    environ = dict(os.environ if environ is None else environ)
    doc: Any = yamlsource.load(path) if path is not None else None
    data = _apply_env(_plain(doc or {}), environ)
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        raise InputError(yamlsource.problems_from(exc, doc, path or Path("(environment)"))) from None
    if path is not None and not settings.policies_dir.is_absolute():
        settings = settings.model_copy(update={"policies_dir": path.parent / settings.policies_dir})
    return settings
