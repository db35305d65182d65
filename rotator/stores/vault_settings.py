"""HashiCorp Vault / OpenBao KV v2 as rotator.yaml and policy files name it; the adapter is
stores/vault.py (imported when a store is made: hvac loads only for those who use Vault)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import field_validator, model_validator

from rotator.plugin.registry import Services, StoreType
from rotator.plugin.settings import (
    CredentialSource,
    HttpUrl,
    StoreRefPart,
    StoreSettings,
    Strict,
    plain_http,
    url_identity,
)
from rotator.plugin.store import Store

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


class VaultAppRole(Strict):
    role_id: str
    """The AppRole's role id (not a secret)."""
    secret_id: CredentialSource
    """The AppRole's secret id, from env or file."""
    mount: str = "approle"
    """Where the AppRole auth method is mounted."""

    @field_validator("mount")
    @classmethod
    def _mount(cls, value: str) -> str:
        return check_vault_path(value, "approle mount")


class VaultAuth(Strict):
    """Exactly one way to log in: a token (from env or file), or AppRole."""

    token: CredentialSource | None = None
    """A Vault token, from env or file."""
    approle: VaultAppRole | None = None
    """Log in with AppRole instead of a token."""

    @model_validator(mode="after")
    def _exactly_one(self) -> VaultAuth:
        if (self.token is None) == (self.approle is None):
            raise ValueError("give exactly one of token or approle")
        if self.token is not None and self.token.current:
            raise ValueError("a Vault token comes from env or file, not current")
        return self


class VaultStoreSettings(StoreSettings):
    type: Literal["vault"]
    url: HttpUrl = "http://127.0.0.1:8200"
    """Vault's (or OpenBao's) address."""
    auth: VaultAuth = VaultAuth(token=CredentialSource(env="VAULT_TOKEN"))
    """How rotator logs in to Vault: `token` or `approle`, exactly one."""
    namespace: str | None = None
    """A Vault Enterprise namespace every path is under."""
    pending_mount: str = "secret"
    """The KV v2 mount of `pending_prefix`."""
    pending_prefix: str = "rotator-pending"
    """Where new keys wait before promotion: a path applications do not read."""

    @field_validator("pending_mount", "pending_prefix")
    @classmethod
    def _safe(cls, value: str) -> str:
        return check_vault_path(value, "pending location")

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str | None) -> str | None:
        return None if value is None else check_vault_path(value, "namespace")

    verify: bool = True
    """Check Vault's TLS certificate; false lets anyone on the path pose as Vault (never in production)."""
    ca_file: Path | None = None
    """The CA certificate (PEM) that signed Vault's, when it is not among the system's."""

    def identity(self, instance: str) -> tuple[str, ...]:
        return ("vault", url_identity(self.url))

    def transport_warnings(self, name: str) -> list[str]:
        notes = []
        if not self.verify:
            notes.append(f"stores.{name}.verify is false: anyone on the path can pose as Vault")
        if plain_http(self.url):
            notes.append(f"stores.{name}.url is plain http to another host: tokens and keys travel unencrypted")
        return notes


class VaultRef(StoreRefPart):
    mount: str = "secret"
    """The KV v2 mount of `path` (a grant's is exact: no pattern)."""
    path: str
    """KV paths under `mount` (a grant: as a pattern, `support/*`)."""
    instance: str = "vault"

    @classmethod
    def check_pattern(cls, name: str, pattern: str) -> str:
        return check_vault_path(pattern, f"grant {name}", allow_glob=name == "path")

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

    @property
    def location(self) -> str:
        return f"{self.mount}:{self.path}"

    def identities(self, store: StoreSettings) -> list[tuple[tuple[str, ...], str | None]]:
        # Vault resolves a namespace and a mount as one path: namespace `a` + mount `b/kv` is
        # namespace `a/b` + mount `kv`
        namespace = (getattr(store, "namespace", None) or "").strip("/")
        full_mount = f"{namespace}/{self.mount}".strip("/")
        return [((*store.identity(self.instance), f"{full_mount}:{self.path}"), None)]


def _build(settings: VaultStoreSettings, services: Services, instance: str) -> Store:
    from rotator.credentials import read_credential
    from rotator.stores.vault import VaultKV

    what = f"stores.{instance}.auth"
    token = approle = None
    if settings.auth.token is not None:
        token = read_credential(settings.auth.token, f"{what}.token")
    else:
        assert settings.auth.approle is not None
        approle = (
            settings.auth.approle.role_id,
            read_credential(settings.auth.approle.secret_id, f"{what}.approle.secret_id"),
        )
    return VaultKV(
        url=settings.url,
        token=token,
        approle=approle,
        pending_mount=settings.pending_mount,
        pending_prefix=settings.pending_prefix,
        verify=settings.verify,
        ca_file=settings.ca_file,
        timeout=settings.timeout.total_seconds(),
        namespace=settings.namespace,
        connections=services.connections,
    )


TYPE = StoreType(name="vault", settings=VaultStoreSettings, ref=VaultRef, build=_build)
