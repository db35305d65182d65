"""What the step modules work with: a rotation's target, what one step did, and the step interface.

The steps of the lifecycle live in `rotation.py` (the API-managed path), `handoff.py` (where the
operator makes or revokes a key) and `gate_signals.py` (what the cutover gate asks consumers). The
last two see the engine only through `StepContext`, so no step module imports the engine back.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from rotator.lifecycle import State
from rotator.plugin.provider import Provider
from rotator.plugin.store import Store
from rotator.policy.rules import Policy
from rotator.settings.models import EngineSettings, HooksSettings
from rotator.settings.policies import SecretSpec
from rotator.state.schema import Rotation as Rotation  # the record the engine hands to commands

if TYPE_CHECKING:
    from rotator.state.db import StateDB


@dataclass(frozen=True)
class Target:
    """Everything a rotation acts on, resolved from the current configuration and policies."""

    spec: SecretSpec
    policy: Policy
    provider: Provider
    store: Store
    location: str
    hooks: HooksSettings = field(default_factory=HooksSettings)
    """What consumer hooks may run and reach (rotator.yaml)."""


@dataclass(frozen=True)
class Step:
    """What one call of `advance` did: the rotation after it, and when to look at it again."""

    rotation: Rotation
    note: str
    waiting_until: datetime | None = None
    held: bool = False
    step: str = ""
    """The state the step ran in."""
    seconds: float = 0.0


class StepContext(Protocol):
    """The engine as a step sees it. Every change is recorded first and written in one fenced
    transaction at the next side effect or at the end of the turn; a step never writes itself."""

    settings: EngineSettings
    actor: str
    clock: Callable[[], datetime]
    db: StateDB
    """Read only (a key's proof asks what is on record); a step's writes are recorded, never made."""
    notices: Callable[[str, dict[str, Any]], list[dict[str, Any]]]
    """The notifications an event sends (its outbox rows), recorded with the change they tell of."""

    def move(
        self,
        rot: Rotation,
        to: State,
        *,
        event: str,
        detail: dict[str, Any] | None = None,
        leftover: dict[str, Any] | None = None,
        **fields: Any,
    ) -> Step:
        """Move `rot` to `to` (checked against the lifecycle), with its audit event and notifications."""

    def wait(self, rot: Rotation, until: datetime, why: str) -> Step:
        """Look at `rot` again at `until`; `why` is shown to people (audited when it changes)."""

    def hold(self, rot: Rotation, reason: str, *, retry: timedelta | None = None) -> Step:
        """Stop for a person: `rot` stays where it is, said once in the audit trail and notifications."""

    def record(
        self,
        rot: Rotation,
        *,
        event: str | None = None,
        detail: dict[str, Any] | None = None,
        outbox: Sequence[dict[str, Any]] = (),
        leftover: dict[str, Any] | None = None,
        **fields: Any,
    ) -> Rotation:
        """Change fields of `rot` without a move (and an audit event when `event` is given)."""

    def audit(self, rot: Rotation, event: str, detail: dict[str, Any]) -> None:
        """An audit event that changes nothing."""

    def flush(self, rot: Rotation) -> bool:
        """Write what was recorded now (fenced); False when there was nothing."""

    def before_side_effect(self, rot: Rotation) -> None:
        """Call before anything that changes the world: what led to it is written, the lease is ours."""

    def complete_if_old_key_dead(self, rot: Rotation, t: Target) -> Step | None:
        """Complete `rot` when the provider refuses the old key; None while it still works; else a hold."""


def payload(
    rot: Rotation, detail: dict[str, Any], *, state: str | None = None, failed_reason: str | None = None
) -> dict[str, Any]:
    """What a notification about `rot` says (never key material: ids and fingerprints only)."""
    payload = {
        "secret": rot.secret,
        "rotation_id": rot.id,
        "provider": rot.provider,
        "policy": rot.policy,
        "state": state or rot.state,
        **detail,
    }
    reason = failed_reason or rot.failed_reason
    if reason and "reason" not in payload:
        payload["reason"] = reason
    return payload
