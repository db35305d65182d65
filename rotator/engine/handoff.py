"""Operator-assisted rotation: rotator asks a person, waits, and verifies what the person did.

awaiting_new_key: the person makes a key named `rotator-<rotation id>` in the dashboard and hands it
over with `rotator supply`; the key is checked (format, accepted by the provider, same account as
the old key) before it goes anywhere. awaiting_revocation: the person revokes the old key; the
rotation completes on its own once the old key is refused.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import SecretStr

from rotator.errors import KeyRefused, KeyRejected, RotationError
from rotator.keys import fingerprint, key_name
from rotator.lifecycle import State
from rotator.plugin.provider import DashboardProvider, ProbeResult
from rotator.plugin.store import StoredValue
from rotator.state.schema import Rotation

if TYPE_CHECKING:
    from rotator.engine.steps import Step, StepContext, Target


def same_account(old: dict[str, str], new: ProbeResult) -> str | None:
    """None when `new` shows the account the old key showed; else why not (no key material)."""
    for field, expected in old.items():
        seen = new.identity.get(field)
        if seen is None:
            return (
                f"cannot prove it belongs to the same account: the provider does not show its {field} "
                "(give it the same permissions as the old key)"
            )
        if seen != expected:
            return f"it belongs to another account ({field} {seen}, expected {expected})"
    return None


def ask_for_key(engine: StepContext, rot: Rotation, t: Target, old_identity: dict[str, str]) -> Step:
    provider = t.provider
    assert isinstance(provider, DashboardProvider)
    permissions = list(t.spec.permissions) or None
    ask = (
        f"{provider.create_instructions(name=key_name(rot.id), permissions=permissions)}, "
        f"then run: rotator supply {rot.id}"
    )
    return engine.move(
        rot,
        State.AWAITING_NEW_KEY,
        event="operator.action_needed",
        detail={"action": "create_key", "instructions": ask},
        old_identity=old_identity,
        waiting_for=f"operator: {ask}",
    )


def wait_for_key(engine: StepContext, rot: Rotation, t: Target) -> Step:
    return engine.wait(rot, engine.clock() + engine.settings.hold_interval, rot.waiting_for)


def supply(engine: StepContext, rot: Rotation, t: Target, key: SecretStr) -> Rotation:
    """Check an operator's key and stage it; raise KeyRejected naming the failed check."""
    provider = t.provider
    if rot.state != State.AWAITING_NEW_KEY:
        raise RotationError(f"rotation {rot.id} is {rot.state}, not waiting for a new key")
    if not isinstance(provider, DashboardProvider):
        raise RotationError(f"rotation {rot.id}: {rot.provider} makes its keys through its API; none is supplied")
    try:
        _check(provider, rot, t, key)
    except KeyRejected as exc:
        engine.audit(rot, "supply.rejected", {"reason": str(exc), "fingerprint": fingerprint(key)})
        engine.flush(rot)
        raise
    value = StoredValue.new(api_key=key, key_id=None, provider=provider.kind, rotation_id=rot.id)
    engine.before_side_effect(rot)
    t.store.stage(location=t.location, token=rot.id, value=value)
    return engine.move(
        rot,
        State.STAGED,
        event="key.supplied",
        detail={"fingerprint": value.fingerprint, "prefix": provider.prefix(key)},
        new_fingerprint=value.fingerprint,
        staged_at=engine.clock(),
    ).rotation


def _check(provider: DashboardProvider, rot: Rotation, t: Target, key: SecretStr) -> None:
    if (problem := provider.check_format(key)) is not None:
        raise KeyRejected(f"format: {problem}")
    if fingerprint(key) == rot.old_fingerprint:
        raise KeyRejected("this is the key being replaced; make a new one")
    try:
        result = provider.probe(key=key)
    except KeyRefused:
        raise KeyRejected(f"refused by {provider.kind}: the provider does not accept this key (401)") from None
    if (problem := same_account(rot.old_identity or {}, result)) is not None:
        raise KeyRejected(f"account: {problem}")


def ask_for_revocation(engine: StepContext, rot: Rotation, t: Target, event: str, detail: dict[str, str]) -> Step:
    provider = t.provider
    assert isinstance(provider, DashboardProvider) and rot.old_version is not None
    old = t.store.read_version(location=t.location, version_id=rot.old_version)
    prefix = provider.prefix(old.api_key) if old else f"with fingerprint {rot.old_fingerprint}"
    ask = provider.revoke_instructions(prefix=prefix)
    return engine.move(
        rot,
        State.AWAITING_REVOCATION,
        event="operator.action_needed",
        detail={**detail, "action": "revoke_key", "instructions": ask, "gate": event},
        waiting_for=f"operator: {ask}; the rotation completes once the old key is refused",
    )


def wait_for_revocation(engine: StepContext, rot: Rotation, t: Target) -> Step:
    if (done := engine.complete_if_old_key_dead(rot, t)) is not None:
        return done
    return engine.wait(rot, engine.clock() + engine.settings.operator_poll, rot.waiting_for)
