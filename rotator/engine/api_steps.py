"""The steps of an API-managed rotation, one function per state, and the table that says which
runs in each state (the operator's steps are in handoff.py).

Every step starts with a guard that asks the world (store, provider) whether its work is already
done — the AWS rotation template's pattern — so a step repeated after a crash does not act twice.
The rotation id is the idempotency token: the store version id and the key name `rotator-<id>`.
A step sees the engine only as a `StepContext`: it records its moves, and the engine writes them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rotator.durations import render
from rotator.engine import gate, gate_signals, handoff, proof
from rotator.engine.steps import Step, StepContext, Target, payload
from rotator.errors import KeyNotProven, KeyRefused, NotYet, RotationError, StoreError
from rotator.keys import key_name
from rotator.lifecycle import State
from rotator.plugin.provider import ApiProvider, DashboardProvider, KeyInfo
from rotator.plugin.store import StoredValue
from rotator.runtime import failpoints
from rotator.state.schema import Rotation


def start(engine: StepContext, rot: Rotation, t: Target) -> Step:
    current = t.store.read_current(location=t.location)
    if current is None:
        raise RotationError(f"{t.location}: the store holds no current key to rotate; store the key in use first")
    if isinstance(t.provider, ApiProvider) and current.value.key_id is None:
        raise RotationError(
            f"{t.location}: the current value has no key_id; {t.provider.kind} revokes keys by id, so add "
            '"key_id" to the stored JSON (SPEC §5) before rotating'
        )
    how = None
    if isinstance(t.provider, ApiProvider):
        # before anything is created: the key to be revoked must be this secret's own
        how = proof.prove(engine.db, secret=rot.secret, provider=t.provider, value=current.value)
    rot = engine.record(
        rot,
        event="rotation.started",
        detail={
            "old_key_id": current.value.key_id,
            "old_fingerprint": current.value.fingerprint,
            **({"old_key_proof": how} if how else {}),
        },
        outbox=engine.notices("rotation.started", payload(rot, {"trigger": rot.trigger, "reason": rot.reason})),
        old_version=current.version_id,
        old_key_id=current.value.key_id,
        old_fingerprint=current.value.fingerprint,
        old_key_proof=how,
    )
    if isinstance(t.provider, DashboardProvider):
        # what the old key belongs to, to hold the operator's new key against
        try:
            identity = t.provider.probe(key=current.value.api_key).identity
        except KeyRefused:
            identity = {}
            engine.audit(
                rot, "old_key.refused", {"note": "the old key is already refused; the account cannot be compared"}
            )
        return handoff.ask_for_key(engine, rot, t, identity)
    return engine.move(rot, State.CREATING, event="creating")


def create(engine: StepContext, rot: Rotation, t: Target) -> Step:
    provider = _api(t)
    name = key_name(rot.id)
    # nothing can be pending before a create was ever begun
    staged = t.store.read_pending(location=t.location, token=rot.id) if rot.create_started_at else None
    if staged is not None:
        # the key reached the pending slot before a crash: adopt it
        return engine.move(
            rot,
            State.STAGED,
            event="key.adopted",
            detail={"key_id": staged.key_id, "fingerprint": staged.fingerprint},
            new_key_id=staged.key_id,
            new_fingerprint=staged.fingerprint,
            staged_at=engine.clock(),
        )
    if rot.create_started_at is not None:
        # an earlier create may have happened without its answer reaching us: look before creating
        for lost in (k for k in provider.list_keys() if k.name == name):
            engine.before_side_effect(rot)
            provider.revoke_key(key_id=lost.id)
            engine.audit(rot, "key.discarded", {"key_id": lost.id, "why": "created, but its secret never reached us"})
    like = _old_key_info(engine, rot, provider) if provider.copies_scopes else None
    first = rot.create_started_at is None  # no create was ever begun, so nothing sits under this token
    rot = engine.record(rot, create_started_at=engine.clock())
    engine.before_side_effect(rot)
    created = provider.create_key(name=name, like=like)
    failpoints.hit("after-create")
    value = StoredValue.new(api_key=created.secret, key_id=created.id, provider=provider.kind, rotation_id=rot.id)
    engine.before_side_effect(rot)
    t.store.stage(location=t.location, token=rot.id, value=value, first=first)
    failpoints.hit("after-stage-write")
    return engine.move(
        rot,
        State.STAGED,
        event="key.created",
        detail={"key_id": created.id, "fingerprint": value.fingerprint},
        new_key_id=created.id,
        new_fingerprint=value.fingerprint,
        staged_at=engine.clock(),
    )


def probe(engine: StepContext, rot: Rotation, t: Target) -> Step:
    value = t.store.read_staged(location=t.location, token=rot.id)
    if value is None:
        raise RotationError(f"{t.location}: the pending version {rot.id} is gone from the store")
    try:
        result = t.provider.probe(key=value.api_key)
    except KeyRefused as exc:
        assert rot.staged_at is not None
        if engine.clock() - rot.staged_at < engine.settings.probe_deadline:
            raise NotYet(f"new key {value.fingerprint} not accepted yet: {exc}", retry_after=2.0) from None
        raise RotationError(
            f"new key {value.fingerprint} still refused {render(engine.settings.probe_deadline)} after creation: {exc}"
        ) from None
    detail = {"fingerprint": value.fingerprint, **result.identity}
    if isinstance(t.provider, ApiProvider) and t.provider.copies_scopes:
        detail["scopes"] = _same_scopes(engine, rot, t.provider)
    elif isinstance(t.provider, DashboardProvider) and (
        problem := handoff.same_account(rot.old_identity or {}, result)
    ):
        raise RotationError(f"the new key {problem}")
    return engine.move(rot, State.PROBED, event="key.probed", detail=detail)


def promote(engine: StepContext, rot: Rotation, t: Target) -> Step:
    if rot.old_version is None:
        raise RotationError("this rotation recorded no old version to promote over")
    engine.before_side_effect(rot)  # a writer that lost its lease must never promote
    t.store.promote(location=t.location, token=rot.id, expected_current=rot.old_version)
    failpoints.hit("after-promote-call")
    now = engine.clock()
    try:
        t.store.set_metadata(
            location=t.location,
            metadata={
                "rotation-id": rot.id,
                "fingerprint": rot.new_fingerprint or "",
                "policy": rot.policy,
                "rotated-at": now.isoformat(timespec="seconds"),
            },
        )
    except StoreError as exc:
        # metadata is a convenience for humans; the key itself is already current
        engine.audit(rot, "store.metadata_failed", {"error": str(exc)})
    return engine.move(
        rot,
        State.PROMOTED,
        event="key.promoted",
        detail={"fingerprint": rot.new_fingerprint},
        promoted_at=now,
    )


def enter_cutover(engine: StepContext, rot: Rotation, t: Target) -> Step:
    return engine.move(
        rot,
        State.CUTOVER_WAIT,
        event="cutover.started",
        detail={"min_soak": render(t.policy.cutover.min_soak), "require": list(t.policy.cutover.require)},
    )


def cutover(engine: StepContext, rot: Rotation, t: Target) -> Step:
    cutover = t.policy.cutover
    available = {
        "consumers": gate_signals.consumers(engine, t),
        "old_key_idle": gate_signals.old_key_idle(engine, t, cutover.idle_for),
    }
    verdict = gate.evaluate(cutover, rot, engine.clock(), available)
    detail = {"signals": verdict.describe()}
    if verdict.open or (verdict.timed_out and cutover.on_timeout == "revoke"):
        event = "cutover.open" if verdict.open else "cutover.deadline_revoke"
        if isinstance(t.provider, DashboardProvider):
            return handoff.ask_for_revocation(engine, rot, t, event, detail)
        return engine.move(rot, State.REVOKING, event=event, detail=detail)
    if verdict.timed_out:
        waited = render(cutover.max_wait) if cutover.max_wait else "-"
        return engine.hold(rot, f"cutover gate still shut after max_wait {waited}: {verdict.describe()}")
    assert verdict.check_again_at is not None
    return engine.wait(rot, verdict.check_again_at, f"cutover gate: {verdict.describe()}")


def revoke(engine: StepContext, rot: Rotation, t: Target) -> Step:
    provider = _api(t)
    old_key_id = rot.old_key_id
    if old_key_id is None:
        raise KeyNotProven("this rotation recorded no old key id; nothing to revoke by id")
    if rot.old_key_proof is None:
        rot = _prove_late(engine, rot, t, provider)
    already = rot.revoke_started_at is not None and old_key_id not in {k.id for k in provider.list_keys()}
    if not already:
        rot = engine.record(rot, revoke_started_at=engine.clock())
        engine.before_side_effect(rot)
        provider.revoke_key(key_id=old_key_id)
        failpoints.hit("after-revoke-call")
    step = engine.move(
        rot,
        State.VERIFYING,
        event="key.revoked",
        detail={"key_id": rot.old_key_id},
        revoked_at=engine.clock(),
    )
    # of all side effects, a revocation is the one people look for first: on record at once
    engine.flush(step.rotation)
    return step


def _prove_late(engine: StepContext, rot: Rotation, t: Target, provider: ApiProvider) -> Rotation:
    """A rotation begun before proofs existed (an upgraded database): prove its old key now."""
    old = _old_value(engine, rot, t)
    how = proof.prove(engine.db, secret=rot.secret, provider=provider, value=old)
    return engine.record(
        rot,
        event="old_key.proven",
        detail={"key_id": rot.old_key_id, "how": how},
        old_key_proof=how,
    )


def _old_value(engine: StepContext, rot: Rotation, t: Target) -> StoredValue:
    """The old key, re-read by version and checked against the fingerprint recorded when it was proven."""
    if rot.old_version is None:
        raise KeyNotProven("this rotation recorded no old version")
    old = t.store.read_version(location=t.location, version_id=rot.old_version)
    if old is None:
        raise RotationError(
            f"the previous version {rot.old_version} is gone from the store; cannot prove the old key is dead"
        )
    proof.same_value(rot.old_fingerprint, old, f"version {rot.old_version} of {t.location}")
    return old


def complete_if_old_key_dead(engine: StepContext, rot: Rotation, t: Target) -> Step | None:
    """Probe the old key (the value that was proven): refused → completes; accepted → None; else held."""
    try:
        old = _old_value(engine, rot, t)
    except RotationError as exc:
        return engine.hold(rot, str(exc))
    try:
        t.provider.probe(key=old.api_key)
    except KeyRefused:
        # nothing is pending here: promote left none
        detail = {
            "old_key_id": rot.old_key_id,
            "old_key": "refused (401)",
            "new_key_id": rot.new_key_id,
            "new_fingerprint": rot.new_fingerprint,
        }
        return engine.move(rot, State.COMPLETED, event="rotation.completed", detail=detail, finished_at=engine.clock())
    return None


def verify(engine: StepContext, rot: Rotation, t: Target) -> Step:
    if rot.revoked_at is None:
        raise RotationError("verifying a revocation that was never recorded")
    if (done := complete_if_old_key_dead(engine, rot, t)) is not None:
        return done
    waited = engine.clock() - rot.revoked_at
    if waited >= engine.settings.verify_deadline:
        return engine.hold(
            rot,
            f"old key {rot.old_key_id} still accepted {render(engine.settings.verify_deadline)} after revocation",
            retry=engine.settings.verify_interval,
        )
    return engine.wait(
        rot,
        engine.clock() + engine.settings.verify_interval,
        f"old key {rot.old_key_id} still accepted; probing until refused",
    )


def roll_back(engine: StepContext, rot: Rotation, t: Target) -> Step:
    current = t.store.read_current(location=t.location)
    ours = current is not None and (current.version_id == rot.id or current.value.fingerprint == rot.new_fingerprint)
    if ours:
        return engine.hold(
            rot, "the new key is already current: refusing to roll back; fix the cause and let the rotation go on"
        )
    detail: dict[str, Any] = {"reason": rot.failed_reason}
    if isinstance(t.provider, ApiProvider):
        revoked = {rot.new_key_id} if rot.new_key_id else set()
        if rot.create_started_at is not None:
            revoked |= {k.id for k in t.provider.list_keys() if k.name == key_name(rot.id)}
        for key_id in sorted(revoked):
            engine.before_side_effect(rot)
            t.provider.revoke_key(key_id=key_id)
        detail["revoked_new_keys"] = sorted(revoked)
    leftover = None
    if not isinstance(t.provider, ApiProvider) and rot.new_fingerprint:
        detail["operator"] = f"revoke the new key {key_name(rot.id)} ({rot.new_fingerprint}) in the dashboard"
        leftover = {"key_id": None, "fingerprint": rot.new_fingerprint, "why": detail["operator"]}
    engine.before_side_effect(rot)
    t.store.clear_pending(location=t.location, token=rot.id)
    return engine.move(
        rot, State.FAILED, event="rotation.failed", detail=detail, leftover=leftover, finished_at=engine.clock()
    )


def _old_key_info(engine: StepContext, rot: Rotation, provider: ApiProvider) -> KeyInfo:
    found = next((k for k in provider.list_keys() if k.id == rot.old_key_id), None)
    if found is None:
        raise RotationError(f"the old key {rot.old_key_id} is not among the provider's live keys")
    return found


def _same_scopes(engine: StepContext, rot: Rotation, provider: ApiProvider) -> str:
    keys = {k.id: k for k in provider.list_keys()}
    old, new = keys.get(rot.old_key_id or ""), keys.get(rot.new_key_id or "")
    if new is None:
        raise RotationError(f"the new key {rot.new_key_id} is not among the provider's live keys")
    if old is not None and old.scopes != new.scopes:
        raise RotationError(f"the new key has scopes {list(new.scopes)}, the old key {list(old.scopes)}")
    return ",".join(new.scopes)


def _api(t: Target) -> ApiProvider:
    if not isinstance(t.provider, ApiProvider):
        raise RotationError(f"{t.provider.kind} keys are made by a person; this step needs an API-managed provider")
    return t.provider


HANDLERS: dict[State, Callable[[StepContext, Rotation, Target], Step]] = {
    State.REQUESTED: start,
    State.CREATING: create,
    State.STAGED: probe,
    State.PROBED: promote,
    State.PROMOTED: enter_cutover,
    State.CUTOVER_WAIT: cutover,
    State.REVOKING: revoke,
    State.VERIFYING: verify,
    State.ROLLING_BACK: roll_back,
    State.AWAITING_NEW_KEY: handoff.wait_for_key,
    State.AWAITING_REVOCATION: handoff.wait_for_revocation,
}
"""The step each state in flight runs (lifecycle.py says where each may go)."""
