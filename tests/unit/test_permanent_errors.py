"""A permanent error (no credentials, access denied, a refused admin credential) in any state of
the lifecycle leads to a resting state — failed with the old key current before promotion, held
after it — within a bounded number of steps: never an endless retry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn

import pytest
from pydantic import SecretStr

from rotator.engine.rotation import Engine
from rotator.engine.steps import Target
from rotator.errors import KeyRefused, StorePermissionError
from rotator.lifecycle import BEFORE_PROMOTION, TERMINAL, State
from rotator.plugin.provider import ApiProvider, CreatedKey, KeyInfo, ProbeResult
from rotator.plugin.store import Store, StoredValue, Version
from rotator.policy.rules import Cutover, Policy
from rotator.settings.models import EngineSettings
from rotator.settings.policies import SecretEntry
from rotator.state.db import StateDB


def _denied(*_: Any, **__: Any) -> NoReturn:
    raise StorePermissionError("AWS Secrets Manager GetSecretValue on 'x': AccessDeniedException")


class DeniedStore(Store):
    """A store whose every call is refused, as AWS answers a role without the permission."""

    read_current = read_version = read_pending = stage = promote = clear_pending = _denied  # type: ignore[assignment]
    pending_tokens = set_metadata = _denied  # type: ignore[assignment]


class RefusingProvider(ApiProvider):
    """A provider that refuses the admin credential (401) on every call."""

    kind = "brandwave"

    def _refuse(self) -> NoReturn:
        raise KeyRefused("the admin token is not valid", provider="bw", status=401)

    def create_key(self, *, name: str, like: KeyInfo | None) -> CreatedKey:
        self._refuse()

    def list_keys(self) -> list[KeyInfo]:
        self._refuse()

    def revoke_key(self, *, key_id: str) -> None:
        self._refuse()

    def probe(self, *, key: SecretStr) -> ProbeResult:
        self._refuse()

    def prove_key(self, *, key_id: str, key: SecretStr) -> str:
        self._refuse()


FIELDS: dict[State, dict[str, Any]] = {
    State.REQUESTED: {},
    State.CREATING: {"old_version": "v1", "old_key_id": "k1", "old_fingerprint": "sha256:aaaaaaaaaaaa"},
}


@pytest.mark.parametrize("broken", ["store", "provider"])
@pytest.mark.parametrize("state", [s for s in State if s not in TERMINAL], ids=lambda s: s.value)
def test_every_state_reaches_a_resting_state_under_a_permanent_error(tmp_path: Path, state: State, broken: str) -> None:
    db = StateDB(f"sqlite:///{tmp_path}/state.db")
    now = [datetime.now(UTC)]
    spec = SecretEntry.model_validate(
        {"name": "app", "provider": "bw", "store": {"aws": {"secret_id": "x"}}, "policy": "p"}
    ).spec()
    store: Store = DeniedStore() if broken == "store" else _working_store()
    target = Target(
        spec=spec,
        policy=Policy(cutover=Cutover(max_wait=timedelta(minutes=1), on_timeout="hold")),
        provider=RefusingProvider(),
        store=store,
        location="x",
    )
    engine = Engine(db=db, resolve=lambda _: target, settings=EngineSettings(), actor="t", clock=lambda: now[0])
    rotation = db.create_rotation(secret="app", provider="bw", policy="p", trigger="manual", reason="t", actor="t")
    stamps = {"old_version": "v1", "old_key_id": "k1", "old_fingerprint": "sha256:aaaaaaaaaaaa", "old_key_proof": "t"}
    if state not in (State.REQUESTED,):
        stamps |= {"new_key_id": "k2", "new_fingerprint": "sha256:bbbbbbbbbbbb", "staged_at": now[0]}
    if state not in BEFORE_PROMOTION and state is not State.ROLLING_BACK:
        stamps |= {"promoted_at": now[0]}
    if state in (State.VERIFYING, State.AWAITING_REVOCATION):
        stamps |= {"revoke_started_at": now[0], "revoked_at": now[0]}
    rotation = db.update(rotation, actor="t", state=state.value, failed_reason="earlier", **stamps)

    for _ in range(12):
        step = engine.advance(db.get(rotation.id))
        current = db.get(rotation.id)
        if current.state in ("completed", "failed", "awaiting_new_key") or current.held_reason:
            break
        now[0] = current.next_attempt_at + timedelta(seconds=1)
    current = db.get(rotation.id)
    # resting: failed, held, or waiting on a person (who makes the new key in a dashboard)
    assert current.state in ("failed", "awaiting_new_key") or current.held_reason, (current.state, step.note)
    if current.state == "failed":
        assert current.promoted_at is None, "a rotation fails (rolls back) only before promotion"
    elif current.held_reason:
        assert current.promoted_at is not None, "before promotion a permanent error rolls back; it is not held"
    db.close()


def _working_store() -> Store:
    """A store that answers like a secret holding one version (only the provider is broken)."""
    value = StoredValue(
        api_key=SecretStr("bwpat_old"), key_id="k1", provider="brandwave", rotated_at="2020-01-01", rotation_id=None
    )

    class Answering(Store):
        def read_current(self, *, location: str) -> Version | None:
            return Version("v1", value)

        def read_version(self, *, location: str, version_id: str) -> StoredValue | None:
            return value

        def read_pending(self, *, location: str, token: str) -> StoredValue | None:
            return None

        def stage(self, *, location: str, token: str, value: StoredValue, first: bool = False) -> None:
            return None

        def promote(self, *, location: str, token: str, expected_current: str) -> None:
            return None

        def clear_pending(self, *, location: str, token: str) -> None:
            return None

        def pending_tokens(self, *, location: str) -> list[str]:
            return []

        def set_metadata(self, *, location: str, metadata: dict[str, str]) -> None:
            return None

    return Answering()
