"""Key material: the wrapper that hides it, and the names logs may use for it instead."""

from __future__ import annotations

import hashlib

from pydantic import SecretStr

from rotator import log


def secret(value: str) -> SecretStr:
    """Wrap key material so that `repr` hides it, and teach the log redactor its value."""
    log.remember_secret(value)
    return SecretStr(value)


def fingerprint(value: SecretStr | str) -> str:
    """The first 12 hex digits of the key's SHA-256: enough to tell keys apart, useless to an attacker."""
    raw = value.get_secret_value() if isinstance(value, SecretStr) else value
    return "sha256:" + hashlib.sha256(raw.encode()).hexdigest()[:12]


def key_name(rotation_id: str) -> str:
    """The name every key rotator creates carries, so `reconcile` can find it again."""
    return f"rotator-{rotation_id}"


def rotation_id_of(name: str) -> str | None:
    return name.removeprefix("rotator-") if name.startswith("rotator-") else None
