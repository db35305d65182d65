"""rotator.yaml plus ROTATOR_… environment overrides → typed settings.

Environment variables override the file: `ROTATOR_STATE__URL` sets `state.url`; a double
underscore separates levels, and provider or store names match with `-` written as `_`
(`ROTATOR_PROVIDERS__BRANDWAVE_PROD__BASE_URL`). `ROTATOR_CONFIG` names the file itself.
Admin credentials are never values in this file: it says where they come from (env, file).
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from rotator import yamlsource
from rotator.durations import PositiveDuration
from rotator.errors import InputError

ENV_PREFIX = "ROTATOR_"
_NOT_OVERRIDES = {"ROTATOR_CONFIG", "ROTATOR_FAILPOINTS", "ROTATOR_REPLICA_ID"}


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


AWS_SECRET_ID = re.compile(
    r"[A-Za-z0-9/_+=.@*?-]{1,512}|arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.@*?-]+"
)
_UNSAFE_PATH = re.compile(r"[%?#\\\s\x00-\x1f\x7f]")


def check_vault_path(value: str, what: str, *, allow_glob: bool = False) -> str:
    """A Vault mount or path that no HTTP client or Vault re-interprets: no `.`/`..`/empty segments,
    no `%`, `?`, `#`, backslash, white space or control characters."""
    stripped = value.strip("/")
    if not stripped:
        raise ValueError(f"{what} is empty")
    if _UNSAFE_PATH.search(value) or (not allow_glob and ("*" in value or "[" in value)):
        raise ValueError(f"{what} {value!r}: only letters, digits and - _ . / (no %, ?, #, \\, spaces)")
    if any(part in ("", ".", "..") for part in stripped.split("/")):
        raise ValueError(f"{what} {value!r} has an empty, '.' or '..' segment")
    return stripped


class Grant(_Strict):
    """Store locations a provider instance may serve, as glob patterns (`*` any run of characters).

    AWS: `{store: aws, secret_id: "prod/support/*"}` (a name or ARN pattern);
    Vault: `{store: vault, mount: secret, path: "support/*"}`.
    """

    store: str = "aws"
    """The store instance; default `aws` for a secret_id grant, `vault` for a path grant."""
    secret_id: str | None = None
    mount: str = "secret"
    path: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _default_store(cls, data: Any) -> Any:
        if isinstance(data, dict) and "store" not in data and "path" in data:
            return {**data, "store": "vault"}
        return data

    @model_validator(mode="after")
    def _one_kind(self) -> Grant:
        if (self.secret_id is None) == (self.path is None):
            raise ValueError("a grant names secret_id (AWS) or path (Vault), one of them")
        if self.secret_id is not None and not AWS_SECRET_ID.fullmatch(self.secret_id):
            raise ValueError(f"secret_id pattern {self.secret_id!r} is not an AWS secret name or ARN")
        if self.path is not None:
            check_vault_path(self.path, "grant path", allow_glob=True)
            check_vault_path(self.mount, "grant mount")
        return self

    def covers(self, *, store: str, location: str) -> bool:
        """Whether this grant allows `location` (an AWS secret id, or `<mount>:<path>`) in store `store`."""
        if store != self.store:
            return False
        if self.secret_id is not None:
            return fnmatch.fnmatchcase(location, self.secret_id)
        mount, _, path = location.partition(":")
        return (
            mount == self.mount.strip("/") and self.path is not None and fnmatch.fnmatchcase(path, self.path.strip("/"))
        )

    def describe(self) -> str:
        return (
            f"{self.store}:{self.secret_id}" if self.secret_id is not None else f"{self.store}:{self.mount}:{self.path}"
        )


class RateLimit(_Strict):
    """At most `requests` in any `per`, the way vendors write their limits (100 per minute), held
    by rotator itself for all rotations of the process. Defaults: Texting Blue 60 per minute (its
    smallest plan), GoBlue 100 per minute and 1,000 per hour; none for the others."""

    requests: int = Field(ge=1)
    per: PositiveDuration


class AwsRef(_Strict):
    secret_id: str
    instance: str = "aws"

    @field_validator("secret_id")
    @classmethod
    def _a_name_or_arn(cls, value: str) -> str:
        if not AWS_SECRET_ID.fullmatch(value) or "*" in value or "?" in value:
            raise ValueError(
                f"secret_id {value!r} is not an AWS secret name (letters, digits, / _ + = . @ -) or secret ARN"
            )
        return value


class VaultRef(_Strict):
    path: str
    mount: str = "secret"
    instance: str = "vault"

    @field_validator("path")
    @classmethod
    def _relative(cls, value: str) -> str:
        if ":" in value:
            raise ValueError("a KV path like support/brandwave (no mount, no ':')")
        return check_vault_path(value, "path")

    @field_validator("mount")
    @classmethod
    def _mount(cls, value: str) -> str:
        return check_vault_path(value, "mount")


class StoreRef(_Strict):
    aws: AwsRef | None = None
    vault: VaultRef | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> StoreRef:
        if (self.aws is None) == (self.vault is None):
            raise ValueError("name exactly one store: {aws: {secret_id: prod/app/key}} or {vault: {path: app/key}}")
        return self

    @property
    def instance(self) -> str:
        return self.aws.instance if self.aws is not None else self.vault.instance  # type: ignore[union-attr]

    @property
    def location(self) -> str:
        """The secret's place in its store: an AWS secret id, or `<mount>:<path>` in Vault."""
        if self.aws is not None:
            return self.aws.secret_id
        assert self.vault is not None
        return f"{self.vault.mount}:{self.vault.path}"


class _ProviderInstance(_Strict):
    """What every provider instance has, whatever its type."""

    grants: list[Grant] = []
    """The store locations this instance's keys may be written to; a policy secret elsewhere is refused."""
    timeout: PositiveDuration = timedelta(seconds=10)
    rate_limits: list[RateLimit] | None = None
    """Client-side request limits; default: the vendor's documented ones (see RateLimit); [] for none."""
    max_concurrent: int | None = Field(default=None, ge=1)
    """At most this many of the instance's rotations advanced at once by the daemons, across all
    replicas together (counted in the state database); default: no limit beyond `daemon.workers`."""


class BrandwaveInstance(_ProviderInstance):
    type: Literal["brandwave"]
    base_url: str = "https://api.gobrandwave.com"
    admin_token: CredentialSource = CredentialSource(current=True)


class BoltlyInstance(_ProviderInstance):
    """Boltly: keys are made with a user's JWT. The refresh token rotates on every refresh, so
    rotator keeps it in a file of its own (written atomically, mode 0600) the moment it changes."""

    type: Literal["boltly"]
    base_url: str = "https://api.boltly.online"
    email: str
    password: CredentialSource | None = None
    """Used when no refresh token works (first start, or a crash lost the newest one)."""
    refresh_token_file: Path | None = None
    """Default: <state directory>/<instance>.refresh. One host only: use refresh_token_store for replicas."""
    refresh_token_store: StoreRef | None = None
    """Keep the refresh token in a store instead, where every replica and command can reach it:
    `{aws: {secret_id: ...}}` or `{vault: {path: ...}}`, a secret that exists (any value to start
    with). It is replaced by compare-and-set, and refreshes are serialised through the state database."""

    @model_validator(mode="after")
    def _one_place(self) -> BoltlyInstance:
        if self.refresh_token_file is not None and self.refresh_token_store is not None:
            raise ValueError("keep the refresh token in refresh_token_file or refresh_token_store, not both")
        return self


class OperatorInstance(_ProviderInstance):
    """A provider whose keys only a person can make and revoke, in a dashboard."""

    type: Literal["blueticks", "texting-blue", "goblue"]
    base_url: str | None = None
    """Default: the vendor's documented base URL."""
    dashboard: str | None = None
    """Where the operator makes keys, shown in the instructions. Default: the vendor's documented place."""


ProviderInstance = Annotated[BrandwaveInstance | BoltlyInstance | OperatorInstance, Field(discriminator="type")]


class AwsStoreSettings(_Strict):
    type: Literal["aws"] = "aws"
    region: str = "us-east-1"
    endpoint_url: str | None = None
    timeout: PositiveDuration = timedelta(seconds=10)
    writes_per_second: int = Field(default=50, ge=1)
    """PutSecretValue, UpdateSecret and UpdateSecretVersionStage share one AWS quota of 50 per second
    per account and region; rotator sends no more (all stores of one region share the limit)."""
    tags_per_second: int = Field(default=50, ge=1)
    """TagResource's own quota, likewise."""


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

    @field_validator("pending_mount", "pending_prefix")
    @classmethod
    def _safe(cls, value: str) -> str:
        return check_vault_path(value, "pending location")

    verify: bool = True
    ca_file: Path | None = None
    timeout: PositiveDuration = timedelta(seconds=10)


StoreSettings = Annotated[AwsStoreSettings | VaultStoreSettings, Field(discriminator="type")]


class StateSettings(_Strict):
    url: str = ""
    auto_upgrade: bool = False
    """Upgrade an older state database's schema at start instead of refusing it (`rotator db upgrade`)."""


class LogSettings(_Strict):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = "auto"
    """`auto`: readable lines when stderr is a terminal, JSON otherwise (systemd, containers, pipes)."""


class EngineSettings(_Strict):
    probe_deadline: PositiveDuration = timedelta(minutes=2)
    """How long a new key may keep being refused before the rotation rolls back."""
    verify_deadline: PositiveDuration = timedelta(minutes=10)
    """How long after revoking the old key it may still be accepted before the rotation is held."""
    verify_interval: PositiveDuration = timedelta(seconds=5)
    retry_base: PositiveDuration = timedelta(seconds=2)
    retry_max: PositiveDuration = timedelta(minutes=5)
    step_deadline: PositiveDuration = timedelta(minutes=30)
    """A step that keeps failing temporarily for this long is treated as failed."""
    hold_interval: PositiveDuration = timedelta(minutes=5)
    operator_poll: PositiveDuration = timedelta(seconds=30)
    gate_poll: PositiveDuration = timedelta(seconds=30)
    """How often the cutover gate asks consumers and the provider again."""
    hook_timeout: PositiveDuration = timedelta(seconds=10)
    """How often to probe an old key an operator was asked to revoke."""
    lease_ttl: PositiveDuration = timedelta(minutes=2)


class DaemonSettings(_Strict):
    listen: str = "127.0.0.1:9464"
    """host:port of /healthz, /readyz and /metrics; loopback unless you mean otherwise."""
    tick: PositiveDuration = timedelta(seconds=5)
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
    signing_secret: CredentialSource | None = None
    """HMAC-SHA256 key (env or file) for the `X-Rotator-Signature` header, so a receiver can verify the sender."""

    @field_validator("url")
    @classmethod
    def _http(cls, value: str) -> str:
        if urlsplit(value).scheme not in ("http", "https") or not urlsplit(value).hostname:
            raise ValueError("a notification url is an http(s) URL with a host")
        return value

    def key(self) -> str:
        """A stable name for this target that does not reveal its URL (Slack's URLs are secrets)."""
        return hashlib.sha256(self.url.encode()).hexdigest()[:16]


class CommandHook(_Strict):
    """A command a policy file may run as a consumer hook, by name: only rotator.yaml says what runs."""

    command: list[str] = Field(min_length=1)

    @field_validator("command")
    @classmethod
    def _absolute(cls, value: list[str]) -> list[str]:
        if not Path(value[0]).is_absolute():
            raise ValueError(f"{value[0]!r}: give the program's absolute path (hooks run with an empty PATH)")
        return value


class HooksSettings(_Strict):
    """What consumer hooks in policy files may do: commands by name, HTTP only to these hosts."""

    commands: dict[str, CommandHook] = {}
    allowed_hosts: list[str] = []
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


class Settings(_Strict):
    state: StateSettings = StateSettings()
    policies_dir: Path = Path("policies")
    log: LogSettings = LogSettings()
    providers: dict[str, ProviderInstance] = {}
    stores: dict[str, StoreSettings] = {"aws": AwsStoreSettings()}
    engine: EngineSettings = EngineSettings()
    daemon: DaemonSettings = DaemonSettings()
    notifications: list[NotificationTarget] = []
    hooks: HooksSettings = HooksSettings()

    def state_dir(self) -> Path:
        """$STATE_DIRECTORY (systemd) or ~/.local/state/rotator, made private (0700) to this user."""
        base = Path(os.environ.get("STATE_DIRECTORY") or Path.home() / ".local" / "state" / "rotator")
        base.mkdir(mode=0o700, parents=True, exist_ok=True)
        if base.stat().st_uid == os.geteuid() and base.stat().st_mode & 0o077:
            base.chmod(0o700)
        return base

    def state_url(self) -> str:
        return self.state.url or f"sqlite:///{self.state_dir() / 'rotator.db'}"


def _plain_http(url: str | None) -> bool:
    parsed = urlsplit(url or "")
    host = (parsed.hostname or "").lower()
    return parsed.scheme == "http" and host not in ("localhost", "::1") and not host.startswith("127.")


def transport_warnings(settings: Settings) -> list[str]:
    """Settings that send credentials where others could read or replace them: plain HTTP off
    this host, Vault without TLS verification."""
    notes = []
    for name, provider in sorted(settings.providers.items()):
        if _plain_http(provider.base_url):
            notes.append(f"providers.{name}.base_url is plain http to another host: keys travel unencrypted")
    for name, store in sorted(settings.stores.items()):
        if isinstance(store, VaultStoreSettings):
            if not store.verify:
                notes.append(f"stores.{name}.verify is false: anyone on the path can pose as Vault")
            if _plain_http(store.url):
                notes.append(f"stores.{name}.url is plain http to another host: tokens and keys travel unencrypted")
        elif _plain_http(store.endpoint_url):
            notes.append(f"stores.{name}.endpoint_url is plain http to another host")
    return notes


def _apply_env(
    data: dict[str, Any], environ: dict[str, str], overridden: dict[tuple[str, ...], str] | None = None
) -> dict[str, Any]:
    """Apply ROTATOR_… overrides to `data`; `overridden` learns which setting each variable set."""
    for name, value in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX) or name in _NOT_OVERRIDES:
            continue
        path = [part.lower() for part in name[len(ENV_PREFIX) :].split("__")]
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
        node[path[-1]] = value
        if overridden is not None:
            overridden[(*keys, path[-1])] = name
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
    overridden: dict[tuple[str, ...], str] = {}
    data = _apply_env(_plain(doc or {}), environ, overridden)
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        problems = yamlsource.problems_from(exc, doc, path or Path("(environment)"), overridden=overridden)
        raise InputError(problems) from None
    problems = [
        f"{path or '(environment)'}:{yamlsource.line_of(doc, ('providers', name, 'refresh_token_store'))}: "
        f"providers.{name}.refresh_token_store names store {p.refresh_token_store.instance!r}, which is not "
        f"in stores (known: {', '.join(sorted(settings.stores)) or 'none'})"
        for name, p in settings.providers.items()
        if isinstance(p, BoltlyInstance)
        and p.refresh_token_store is not None
        and p.refresh_token_store.instance not in settings.stores
    ]
    if problems:
        raise InputError(problems)
    if path is not None and not settings.policies_dir.is_absolute():
        settings = settings.model_copy(update={"policies_dir": path.parent / settings.policies_dir})
    return settings
