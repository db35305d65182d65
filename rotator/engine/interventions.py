"""What a person may decide about a rotation at the cutover gate: release it, or abort it."""

from __future__ import annotations

from rotator.engine import handoff
from rotator.engine.rotation import Engine
from rotator.errors import RotationError
from rotator.lifecycle import ABORTABLE_AFTER_PROMOTION, TERMINAL, State, can_roll_back
from rotator.plugin.provider import DashboardProvider
from rotator.state.schema import Rotation


def release(engine: Engine, rot: Rotation, *, why: str) -> Rotation:
    """A person opens the cutover gate: revoke the old key now, whatever the signals say."""
    if rot.state != State.CUTOVER_WAIT:
        raise RotationError(f"rotation {rot.id} is {rot.state}; only a rotation at the cutover gate can be released")
    t = engine.resolve(rot)
    detail = {"by": engine.actor, "why": why}
    if isinstance(t.provider, DashboardProvider):
        return engine.write(handoff.ask_for_revocation(engine, rot, t, "cutover.released", detail))
    return engine.write(engine.move(rot, State.REVOKING, event="cutover.released", detail=detail))


def abort(engine: Engine, rot: Rotation, *, why: str) -> Rotation:
    """Stop a rotation. Before promotion it rolls back; at the gate the old key is left alive."""
    state = rot.state
    reason = f"aborted by {engine.actor}: {why}"
    if can_roll_back(state):
        return engine.write(
            engine.move(rot, State.ROLLING_BACK, event="rotation.aborted", detail={"why": why}, failed_reason=reason)
        )
    if state in ABORTABLE_AFTER_PROMOTION:
        detail = {
            "why": why,
            "note": f"the new key stays current; the old key {rot.old_key_id or rot.old_fingerprint}"
            " was NOT revoked and still works",
        }
        leftover = {
            "key_id": rot.old_key_id,
            "fingerprint": rot.old_fingerprint,
            "why": f"aborted at the cutover gate ({why}): the old key was not revoked",
        }
        return engine.write(
            engine.move(
                rot,
                State.FAILED,
                event="rotation.aborted",
                detail=detail,
                leftover=leftover,
                failed_reason=reason,
                finished_at=engine.clock(),
            )
        )
    if state in TERMINAL:
        raise RotationError(f"rotation {rot.id} already ended ({rot.state}); there is nothing to abort")
    raise RotationError(f"rotation {rot.id} is {rot.state}: too late to abort (the old key is being revoked)")
