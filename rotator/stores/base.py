"""The store interface and the value every store holds (SPEC §5).

A store has three slots per secret: *current* (what applications read), *pending* (the new key,
where applications do not look) and *previous* (the key before current). Every write is keyed by
the rotation id, so a resumed step never writes twice.
"""

from __future__ import annotations

import abc
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import SecretStr

from rotator.errors import StoreError
from rotator.keys import fingerprint, secret


@dataclass(frozen=True)
class StoredValue:
    api_key: SecretStr = field(repr=False)
    key_id: str | None
    provider: str
    rotated_at: str
    rotation_id: str | None

    @classmethod
    def new(cls, *, api_key: SecretStr, key_id: str | None, provider: str, rotation_id: str) -> StoredValue:
        now = datetime.now(UTC).isoformat(timespec="seconds")
        return cls(api_key=api_key, key_id=key_id, provider=provider, rotated_at=now, rotation_id=rotation_id)

    def to_json(self) -> str:
        return json.dumps(
            {
                "api_key": self.api_key.get_secret_value(),
                "key_id": self.key_id,
                "provider": self.provider,
                "rotated_at": self.rotated_at,
                "rotation_id": self.rotation_id,
            }
        )

    @classmethod
    def from_json(cls, text: str, *, where: str) -> StoredValue:
        """Parse a stored value; a bare string (a key seeded by hand) is taken as the key itself."""
        try:
            data: Any = json.loads(text)
        except ValueError:
            data = text.strip()
        if isinstance(data, str):
            return cls(api_key=secret(data), key_id=None, provider="", rotated_at="", rotation_id=None)
        if not isinstance(data, dict) or not isinstance(data.get("api_key"), str):
            raise StoreError(f"{where}: stored value is not a JSON object with an 'api_key' string")
        key_id = data.get("key_id")
        return cls(
            api_key=secret(data["api_key"]),
            key_id=str(key_id) if key_id not in (None, "") else None,
            provider=str(data.get("provider") or ""),
            rotated_at=str(data.get("rotated_at") or ""),
            rotation_id=data.get("rotation_id"),
        )

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.api_key)


@dataclass(frozen=True)
class Version:
    version_id: str
    value: StoredValue


class Store(abc.ABC):
    """Slots of one store backend; `location` is the secret's place in it (secret id, KV path)."""

    @abc.abstractmethod
    def read_current(self, *, location: str) -> Version | None:
        """What applications read now; None when the secret does not exist or has no value."""

    @abc.abstractmethod
    def read_version(self, *, location: str, version_id: str) -> StoredValue | None:
        """One version by id (pending or previous), or None when it does not exist."""

    @abc.abstractmethod
    def read_pending(self, *, location: str, token: str) -> StoredValue | None:
        """The value in the pending slot written under `token`, or None."""

    @abc.abstractmethod
    def stage(self, *, location: str, token: str, value: StoredValue) -> None:
        """Write `value` to the pending slot, keyed by `token`; writing the same again is a no-op.

        Raises StoreConflict when `token` already holds a different value.
        """

    @abc.abstractmethod
    def promote(self, *, location: str, token: str, expected_current: str) -> None:
        """Make the version `token` current; the old current becomes previous; no pending is left.

        Idempotent. Raises StoreConflict if current is neither `token` nor `expected_current`
        (someone else changed the secret during the rotation).
        """

    @abc.abstractmethod
    def clear_pending(self, *, location: str, token: str) -> None:
        """Remove `token` from the pending slot; nothing pending is success."""

    @abc.abstractmethod
    def pending_tokens(self, *, location: str) -> list[str]:
        """Tokens that sit in the pending slot (for `reconcile`)."""

    @abc.abstractmethod
    def set_metadata(self, *, location: str, metadata: dict[str, str]) -> None:
        """Merge non-secret metadata (fingerprint, rotation id, policy) into the secret's tags."""

    def check_access(self, *, location: str) -> list[tuple[str, str | None]]:
        """Prove, changing nothing, each permission a rotation needs here: (what, None if allowed
        else why not). Raises StoreError when the store cannot be reached or the secret read."""
        self.read_current(location=location)
        return [("read", None)]

    def warnings(self, *, location: str) -> list[str]:
        """Settings of the secret that could break a promise (read-only; shown by `validate`)."""
        return []
