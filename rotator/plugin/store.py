"""The store interface and the value every store holds (SPEC §5).

A store has three slots per secret: *current* (what applications read), *pending* (the new key,
where applications do not look) and *previous* (the key before current). Every write is keyed by
the rotation id, so a resumed step never writes twice.
"""

from __future__ import annotations

import abc
import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
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


class KnownValues:
    """Values whose content can never change, as this process last read or wrote them: a store
    version by id (AWS version ids and Vault version numbers are immutable) and the value a
    rotation staged under its token. A rotation reads the same versions several times (the old
    key to act with and to probe, the new one to probe and act with); each is read at most once.
    Bounded: the least recently used go first."""

    def __init__(self, limit: int = 4096) -> None:
        self._values: OrderedDict[tuple[str, str], StoredValue] = OrderedDict()
        self._limit = limit
        self._lock = threading.Lock()

    def get(self, location: str, version: str) -> StoredValue | None:
        with self._lock:
            value = self._values.get((location, version))
            if value is not None:
                self._values.move_to_end((location, version))
            return value

    def recall(self, location: str, version: str, read: Callable[[], StoredValue | None]) -> StoredValue | None:
        """The value kept for (location, version), else `read()`'s, kept when there is one."""
        if (known := self.get(location, version)) is not None:
            return known
        value = read()
        if value is not None:
            self.put(location, version, value)
        return value

    def put(self, location: str, version: str, value: StoredValue) -> None:
        with self._lock:
            self._values[(location, version)] = value
            self._values.move_to_end((location, version))
            while len(self._values) > self._limit:
                self._values.popitem(last=False)


class Store(abc.ABC):
    """Slots of one store backend; `location` is the secret's place in it (secret id, KV path)."""

    @abc.abstractmethod
    def read_current(self, *, location: str) -> Version | None:
        """What applications read now; None when the secret does not exist or has no value."""

    def read_current_many(self, locations: Sequence[str]) -> dict[str, Version | None]:
        """`read_current` of many locations, for discovering a fleet: a store with a batch read
        overrides this. A location that cannot be read now (or holds no readable value) is left
        out, for a later try; one that does not exist maps to None."""
        found: dict[str, Version | None] = {}
        for location in locations:
            try:
                found[location] = self.read_current(location=location)
            except StoreError:
                continue
        return found

    @abc.abstractmethod
    def read_version(self, *, location: str, version_id: str) -> StoredValue | None:
        """One version by id (pending or previous), or None when it does not exist."""

    @abc.abstractmethod
    def read_pending(self, *, location: str, token: str) -> StoredValue | None:
        """The value in the pending slot written under `token`, or None."""

    def read_staged(self, *, location: str, token: str) -> StoredValue | None:
        """The value a rotation wrote under `token`, whether still pending or since promoted; None
        when the store holds none. Stores answer from memory what this process wrote or read already."""
        value = self.read_pending(location=location, token=token)
        if value is None:
            current = self.read_current(location=location)  # promoted since, and the pending slot cleared
            value = current.value if current is not None and current.value.rotation_id == token else None
        return value

    @abc.abstractmethod
    def stage(self, *, location: str, token: str, value: StoredValue, first: bool = False) -> None:
        """Write `value` to the pending slot, keyed by `token`; writing the same again is a no-op.

        Raises StoreConflict when `token` already holds a different value. `first`: the caller
        knows nothing was ever written under `token` (a store may then skip looking first).
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
