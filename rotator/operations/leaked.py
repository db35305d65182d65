"""Which managed secret a leaked key belongs to, for `rotator incident --leaked-key -`.

The state database already records every key's fingerprint (old and new, per rotation), so it
narrows the search to the secrets that ever held a key with this fingerprint without reading any
store. A candidate is then confirmed against the store itself, comparing the whole key, because a
fingerprint is 48 bits and the database may be behind the store. Only secrets rotator has never
rotated (no fingerprint on record: seeded by hand) are read one by one, and only when the database
knows nothing; when even they do not hold it, every other secret's current key is read, since the
database may be behind the stores altogether (restored from a backup older than the last rotations):
a live key must never go unfound for want of a record.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from pydantic import SecretStr

from rotator.app import App
from rotator.durations import moment
from rotator.keys import fingerprint
from rotator.lifecycle import State
from rotator.state.schema import Rotation

CURRENT, PENDING, PREVIOUS = "current", "pending", "previous"


@dataclass(frozen=True)
class Match:
    secret: str
    slot: str  # CURRENT, PENDING (of an unfinished rotation) or PREVIOUS (an earlier current)
    rotation: Rotation | None  # the rotation that made the key, or replaced it (PREVIOUS)
    alive: bool  # False only when rotator proved the key dead (a completed rotation replaced it)

    def describe(self) -> str:
        if self.slot == CURRENT:
            made = f", made by rotation {self.rotation.id}" if self.rotation is not None else ""
            return f"the current key of {self.secret}{made}"
        if self.slot == PENDING:
            assert self.rotation is not None
            return f"the pending (not yet current) key of rotation {self.rotation.id} of {self.secret}"
        assert self.rotation is not None
        if self.alive:
            return (
                f"the previous key of {self.secret}, still alive: rotation {self.rotation.id} "
                f"({self.rotation.state}) has not revoked it yet"
            )
        when = moment(self.rotation.revoked_at) if self.rotation.revoked_at else "?"
        return (
            f"a previous key of {self.secret}, revoked by rotation {self.rotation.id} and proven dead ({when}); "
            "nothing to rotate"
        )


@dataclass(frozen=True)
class Search:
    matches: list[Match]
    recorded: int  # rotations whose recorded fingerprints matched
    read: int  # secrets whose current value had to be read


def find(app: App, leaked: SecretStr) -> Search:
    wanted = fingerprint(leaked)
    managed = app.policies.secrets
    recorded = [r for r in app.db.rotations_with_fingerprint(wanted) if r.secret in managed]
    candidates = sorted({r.secret for r in recorded})
    read = 0
    if not candidates:
        known = app.db.secrets_with_fingerprints()
        candidates = sorted(name for name in managed if name not in known)
        read = len(candidates)
    matches = [m for name in candidates if (m := _match(app, name, leaked, wanted, recorded)) is not None]
    if not matches:
        # a process killed between writing a new key to the pending slot and recording its
        # fingerprint left a live key no record names: the slots of rotations in flight hold it
        in_flight = [r for r in app.db.active() if r.secret in managed]
        matches = [m for r in in_flight if (m := _pending(app, r, leaked)) is not None]
        read += len(in_flight)
    if not matches:
        rest = sorted(set(managed) - set(candidates))
        matches = [m for name in rest if (m := _match(app, name, leaked, wanted, [])) is not None]
        read += len(rest)
    return Search(matches, len(recorded), read)


def _pending(app: App, rotation: Rotation, leaked: SecretStr) -> Match | None:
    spec = app.policies.secret(rotation.secret)
    staged = app.store(spec.store.instance).read_pending(location=spec.store.location, token=rotation.id)
    if staged is not None and _same(staged.api_key, leaked):
        return Match(rotation.secret, PENDING, rotation, alive=True)
    return None


def _match(app: App, name: str, leaked: SecretStr, wanted: str, recorded: list[Rotation]) -> Match | None:
    spec = app.policies.secret(name)
    store = app.store(spec.store.instance)
    mine = sorted((r for r in recorded if r.secret == name), key=lambda r: r.created_at, reverse=True)
    current = store.read_current(location=spec.store.location)
    if current is not None and _same(current.value.api_key, leaked):
        made = next((r for r in mine if r.new_fingerprint == wanted), None)
        return Match(name, CURRENT, made, alive=True)
    for rotation in mine:
        if rotation.new_fingerprint == wanted and not rotation.terminal and rotation.promoted_at is None:
            staged = store.read_pending(location=spec.store.location, token=rotation.id)
            if staged is not None and _same(staged.api_key, leaked):
                return Match(name, PENDING, rotation, alive=True)
        if rotation.old_fingerprint == wanted:
            kept = (
                store.read_version(location=spec.store.location, version_id=rotation.old_version)
                if rotation.old_version
                else None
            )
            if kept is not None and not _same(kept.api_key, leaked):
                continue  # the 48-bit fingerprint collided; the version itself says otherwise
            # the key this rotation replaced: dead once the rotation completed (revocation verified)
            return Match(name, PREVIOUS, rotation, alive=rotation.state != State.COMPLETED)
    return None


def _same(stored: SecretStr, leaked: SecretStr) -> bool:
    return hmac.compare_digest(stored.get_secret_value().encode(), leaked.get_secret_value().encode())
