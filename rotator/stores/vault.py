"""HashiCorp Vault (or OpenBao) KV v2.

- current: the latest version at the application's path;
- pending: `<pending_mount>/<pending_prefix>/<path>/<rotation id>`, a rotator-owned path that
  applications do not read, written with `cas=0` (create only) so a resumed step never writes twice;
- promote: a new version at the application's path, written with check-and-set against the version
  the rotation saw; the previous version stays readable (within the secret's `max_versions`);
- metadata: merged into `custom_metadata` with a raw JSON merge PATCH (hvac's update_metadata
  replaces the whole map, and resets delete_version_after).

Locations are `<mount>:<path>`. hvac exceptions carry raw response text: they are translated
here by type and never logged as they are.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import hvac
import requests
from hvac import exceptions as vault_errors
from pydantic import SecretStr

from rotator.errors import StoreConflict, StoreError, StorePermissionError, StoreUnavailable
from rotator.plugin.store import KnownValues, Store, StoredValue, Version

_CAPABILITY = {"read": "read", "write": "create/update", "delete": "delete", "list": "list", "patch": "patch"}


def split(location: str) -> tuple[str, str]:
    mount, _, path = location.partition(":")
    return mount, path


class VaultKV(Store):
    def __init__(
        self,
        *,
        url: str,
        token: SecretStr | None = None,
        approle: tuple[str, SecretStr] | None = None,
        pending_mount: str = "secret",
        pending_prefix: str = "rotator-pending",
        verify: bool = True,
        ca_file: Path | None = None,
        timeout: float = 10.0,
        namespace: str | None = None,
        connections: int = 64,
    ) -> None:
        if (token is None) == (approle is None):
            raise StoreError("vault: configure exactly one of token or approle auth")
        session = requests.Session()
        # requests keeps 10 connections per host by default: more rotations at once would reopen them
        pooled = requests.adapters.HTTPAdapter(pool_maxsize=connections)
        session.mount("http://", pooled)
        session.mount("https://", pooled)
        self._client = hvac.Client(
            url=url,
            verify=str(ca_file) if ca_file else verify,
            timeout=max(1, round(timeout)),
            namespace=namespace,
            session=session,
        )
        self._token = token
        self._approle = approle
        self.pending_mount = pending_mount
        self.pending_prefix = pending_prefix.strip("/")
        self._renew_at: float | None = None
        self._logged_in = False
        self.renewals = 0
        self.logins = 0
        self.known = KnownValues()

    # auth ----------------------------------------------------------------------------------------

    def _login(self) -> None:
        if self._approle is not None:
            role_id, secret_id = self._approle
            self._guard(
                "login",
                "auth/approle/login",
                lambda: self._client.auth.approle.login(role_id=role_id, secret_id=secret_id.get_secret_value()),
            )
            self.logins += 1
        else:
            assert self._token is not None
            self._client.token = self._token.get_secret_value()
        self._learn_ttl()
        self._logged_in = True

    def _learn_ttl(self) -> None:
        info = self._guard("read", "auth/token/lookup-self", self._client.auth.token.lookup_self)["data"]
        ttl = int(info.get("ttl") or 0)
        # renew at two thirds of the lifetime; a token without a TTL (root, periodic 0) never expires
        self._renew_at = time.monotonic() + ttl * 2 / 3 if ttl else None
        self._renewable = bool(info.get("renewable"))

    def _ensure_token(self) -> None:
        if not self._logged_in:
            self._login()
            return
        if self._renew_at is None or time.monotonic() < self._renew_at:
            return
        if self._renewable:
            try:
                self._client.auth.token.renew_self()
                self.renewals += 1
                self._learn_ttl()
                return
            except (vault_errors.Forbidden, vault_errors.InvalidRequest):
                pass
        if self._approle is None:
            raise StorePermissionError(
                "vault: the token is about to expire and cannot be renewed; "
                "give rotator a renewable or periodic token, or AppRole"
            )
        self._login()

    def _guard(self, capability: str, path: str, call: Any) -> Any:
        try:
            return call()
        except vault_errors.InvalidPath:
            return None
        except vault_errors.Forbidden:
            raise StorePermissionError(
                f"vault: permission denied on {path}; the policy needs '{_CAPABILITY.get(capability, capability)}'"
                f" on {path}"
            ) from None
        except (
            vault_errors.VaultDown,
            vault_errors.InternalServerError,
            vault_errors.RateLimitExceeded,
            vault_errors.BadGateway,
        ) as exc:
            raise StoreUnavailable(f"vault: {type(exc).__name__} on {path} (sealed, down or overloaded)") from None
        except requests.RequestException as exc:
            raise StoreUnavailable(f"vault: cannot reach the server ({type(exc).__name__})") from None
        except vault_errors.InvalidRequest as exc:
            if "check-and-set" in str(exc):
                raise StoreConflict(
                    f"vault: {path} was written by someone else (check-and-set mismatch); not overwriting it"
                ) from None
            raise StoreError(f"vault: invalid request on {path}") from None
        except vault_errors.VaultError as exc:
            raise StoreError(f"vault: {type(exc).__name__} on {path}") from None

    def _call(self, capability: str, path: str, call: Any) -> Any:
        self._ensure_token()
        return self._guard(capability, path, call)

    # KV helpers ----------------------------------------------------------------------------------

    def _read(self, mount: str, path: str, version: int | None = None) -> tuple[int, dict[str, Any]] | None:
        got = self._call(
            "read",
            f"{mount}/data/{path}",
            lambda: self._client.secrets.kv.v2.read_secret_version(
                path=path, mount_point=mount, version=version, raise_on_deleted_version=True
            ),
        )
        if not got or not got.get("data") or got["data"].get("data") is None:
            return None
        return int(got["data"]["metadata"]["version"]), dict(got["data"]["data"])

    def _write(self, mount: str, path: str, data: dict[str, Any], cas: int) -> int:
        got = self._call(
            "write",
            f"{mount}/data/{path}",
            lambda: self._client.secrets.kv.v2.create_or_update_secret(
                path=path, secret=data, cas=cas, mount_point=mount
            ),
        )
        return int(got["data"]["version"])

    def _pending_path(self, location: str, token: str) -> str:
        mount, path = split(location)
        return f"{self.pending_prefix}/{mount}/{path}/{token}"

    @staticmethod
    def _value(data: dict[str, Any], where: str) -> StoredValue:
        return StoredValue.from_json(json.dumps(data), where=where)

    # the Store interface ---------------------------------------------------------------------------

    def read_current(self, *, location: str) -> Version | None:
        mount, path = split(location)
        got = self._read(mount, path)
        if got is None:
            return None
        value = self._value(got[1], location)
        self.known.put(location, str(got[0]), value)
        return Version(str(got[0]), value)

    def read_version(self, *, location: str, version_id: str) -> StoredValue | None:
        def read() -> StoredValue | None:
            mount, path = split(location)
            got = self._read(mount, path, int(version_id))
            return self._value(got[1], location) if got else None

        return self.known.recall(location, version_id, read)

    def read_pending(self, *, location: str, token: str) -> StoredValue | None:
        got = self._read(self.pending_mount, self._pending_path(location, token))
        return self._value(got[1], location) if got else None

    def read_staged(self, *, location: str, token: str) -> StoredValue | None:
        return self.known.recall(
            location, token, lambda: super(VaultKV, self).read_staged(location=location, token=token)
        )

    def stage(self, *, location: str, token: str, value: StoredValue, first: bool = False) -> None:
        try:
            # cas=0: written only if the pending slot is empty, so a second write never replaces a first
            self._write(self.pending_mount, self._pending_path(location, token), json.loads(value.to_json()), cas=0)
        except StoreConflict:
            existing = self.read_pending(location=location, token=token)
            if existing is None or existing.api_key.get_secret_value() != value.api_key.get_secret_value():
                raise StoreConflict(
                    f"{location}: the pending slot of rotation {token} already holds another key"
                ) from None
        self.known.put(location, token, value)

    def promote(self, *, location: str, token: str, expected_current: str) -> None:
        pending = self.read_staged(location=location, token=token)
        if pending is None:
            raise StoreError(f"{location}: the pending slot of rotation {token} is empty; nothing to promote")
        mount, path = split(location)
        try:
            # the check-and-set on the version read when the rotation started is the conflict check
            version = self._write(mount, path, json.loads(pending.to_json()), cas=int(expected_current))
            self.known.put(location, str(version), pending)
        except StoreConflict:
            current = self.read_current(location=location)
            if current is None or current.value.rotation_id != token:  # not a resumed promote: someone else's
                seen = current.version_id if current else "none"
                raise StoreConflict(
                    f"{location}: current version is {seen}, not {expected_current} as when the rotation "
                    "started; someone else wrote the secret — not overwriting it"
                ) from None
        self.clear_pending(location=location, token=token)

    def clear_pending(self, *, location: str, token: str) -> None:
        path = self._pending_path(location, token)
        self._call(
            "delete",
            f"{self.pending_mount}/metadata/{path}",
            lambda: self._client.secrets.kv.v2.delete_metadata_and_all_versions(
                path=path, mount_point=self.pending_mount
            ),
        )

    def pending_tokens(self, *, location: str) -> list[str]:
        folder = self._pending_path(location, "").rstrip("/")
        got = self._call(
            "list",
            f"{self.pending_mount}/metadata/{folder}",
            lambda: self._client.secrets.kv.v2.list_secrets(path=folder, mount_point=self.pending_mount),
        )
        return [k for k in (got or {}).get("data", {}).get("keys", []) if not k.endswith("/")]

    def check_access(self, *, location: str) -> list[tuple[str, str | None]]:
        """The token's capabilities on each path a rotation touches (`sys/capabilities-self`): nothing is written."""
        if self.read_current(location=location) is None:
            raise StoreError(f"vault: {location} does not exist or has no current version")
        mount, path = split(location)
        pending = self._pending_path(location, "check")
        needs = {
            f"{mount}/data/{path}": ("promote (CAS write)", {"read", "update"}),
            f"{mount}/metadata/{path}": ("metadata", {"read", "patch"}),
            f"{self.pending_mount}/data/{pending}": ("write pending", {"create", "read"}),
            f"{self.pending_mount}/metadata/{pending}": ("clear pending", {"delete"}),
        }
        answer = self._call(
            "read",
            "sys/capabilities-self",
            lambda: self._client.adapter.post("/v1/sys/capabilities-self", json={"paths": list(needs)}),
        )
        body = answer.json() if hasattr(answer, "json") else answer
        granted = body.get("data", body) if isinstance(body, dict) else {}
        results: list[tuple[str, str | None]] = [("read", None)]
        for where, (what, wanted) in needs.items():
            have = set(granted.get(where) or [])
            missing = set() if "root" in have else wanted - have - ({"create", "update"} if "sudo" in have else set())
            results.append((what, None if not missing else f"the policy needs {', '.join(sorted(missing))} on {where}"))
        return results

    def set_metadata(self, *, location: str, metadata: dict[str, str]) -> None:
        mount, path = split(location)
        url = f"/v1/{mount}/metadata/{path}"
        self._call(
            "patch",
            f"{mount}/metadata/{path}",
            lambda: self._client.adapter.request(
                "PATCH",
                url,
                json={"custom_metadata": metadata},
                headers={"Content-Type": "application/merge-patch+json"},
            ),
        )

    def warnings(self, *, location: str) -> list[str]:
        mount, path = split(location)
        meta = self._call(
            "read",
            f"{mount}/metadata/{path}",
            lambda: self._client.secrets.kv.v2.read_secret_metadata(path=path, mount_point=mount),
        )
        if not meta:
            return []
        data = meta["data"]
        out = []
        max_versions = int(data.get("max_versions") or 0)
        if max_versions == 0:  # 0: the mount's setting applies
            config = self._call(
                "read", f"{mount}/config", lambda: self._client.secrets.kv.v2.read_configuration(mount_point=mount)
            )
            max_versions = int(((config or {}).get("data") or {}).get("max_versions") or 0)
        if max_versions == 1:
            out.append(
                f"{location}: max_versions is 1, so promoting a new key destroys the previous one "
                "before the old key is revoked; set max_versions to 2 or more"
            )
        after = str(data.get("delete_version_after") or "0s")
        if after not in ("0s", "0"):
            out.append(
                f"{location}: delete_version_after is {after}; the previous version may vanish during a long cutover"
            )
        return out
