"""Prove before revoke: the key a rotation will revoke must be shown to be this secret's own.

The store says `{"api_key": …, "key_id": …}`, but whoever can write the store location can
pair any key with any id — a policy author seeding his own secret with a production key's id
would otherwise have rotator revoke that production key. So `key_id` is trusted only when:
- rotator recorded it: a completed rotation of this secret created that key (same id and
  fingerprint), or an operator adopted it by hand (`rotator adopt`, audited); or
- the provider shows it: the stored key authenticates **and** is the key `key_id` names
  (`ApiProvider.prove_key`: Boltly's listed prefix, or the list's last-used times).
The proof is kept on the rotation (`old_key_proof`); revoking without one is refused.
"""

from __future__ import annotations

from rotator.errors import KeyNotProven, KeyRefused
from rotator.plugin.provider import ApiProvider
from rotator.plugin.store import StoredValue
from rotator.state.db import StateDB

ADOPTED = "key.adopted"


def prove(db: StateDB, *, secret: str, provider: ApiProvider, value: StoredValue) -> str:
    """How `value.key_id` is known to be the key `value.api_key` is; raise KeyNotProven otherwise."""
    key_id, fingerprint = value.key_id, value.fingerprint
    if key_id is None:
        raise KeyNotProven("the stored value has no key_id")
    if (how := db.key_on_record(secret, key_id, fingerprint, adopted=ADOPTED)) is not None:
        return how
    try:
        how = provider.prove_key(key_id=key_id, key=value.api_key)
    except KeyRefused:
        raise KeyNotProven(
            f"the stored api_key ({fingerprint}) is refused by {provider.kind}, so nothing shows it is key "
            f"{key_id}; rotator will not revoke {key_id} — store the key in use, or check and `rotator adopt`"
        ) from None
    return f"shown by {provider.kind}: {how}"


def same_value(rotation_fingerprint: str | None, value: StoredValue, what: str) -> None:
    """Raise KeyNotProven unless `value` is the key that was proven (by its recorded fingerprint)."""
    if rotation_fingerprint is not None and value.fingerprint != rotation_fingerprint:
        raise KeyNotProven(
            f"{what} now holds key {value.fingerprint}, not {rotation_fingerprint} that was proven; "
            "someone rewrote it — not acting on it"
        )
