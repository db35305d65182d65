"""advance(rotation): one idempotent step of one rotation, through its provider and store.

Every step starts with a guard that asks the world (store, provider) whether its work is already
done — the AWS rotation template's pattern — so a step repeated after a crash does not act twice.
The rotation id is the idempotency token: the store version id and the key name `rotator-<id>`.
Errors drive what happens next: a temporary one schedules a retry (the rotation becomes a row
with a time to look again); a permanent one rolls back before promotion, and holds after it.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from pydantic import SecretStr

from rotator import failpoints, log
from rotator.config import EngineSettings
from rotator.durations import render
from rotator.engine import gate, gate_signals, handoff, proof
from rotator.engine.steps import Step, Target
from rotator.errors import KeyNotProven, KeyRefused, LeaseHeld, NotYet, RotationError, RotatorError, StoreError
from rotator.keys import key_name
from rotator.lifecycle import TERMINAL, State, can_roll_back, check
from rotator.providers.base import ApiProvider, DashboardProvider, KeyInfo
from rotator.state.clock import utcnow
from rotator.state.db import Change, StateDB
from rotator.state.schema import Rotation
from rotator.stores.base import StoredValue

_log = log.get(__name__)


class Engine:
    def __init__(
        self,
        *,
        db: StateDB,
        resolve: Callable[[Rotation], Target],
        settings: EngineSettings,
        actor: str,
        clock: Callable[[], datetime] = utcnow,
        notices: Callable[[str, dict[str, Any]], list[dict[str, Any]]] = lambda event, payload: [],
    ) -> None:
        self.notices = notices
        """Outbox rows for an event (notify.Notifier.rows); written with the state change they tell of."""
        self.db = db
        self.resolve = resolve
        self.settings = settings
        self.actor = actor
        self.clock = clock
        self._journal: dict[str, tuple[Rotation, list[Change]]] = {}
        """Changes recorded and not yet written, per rotation (see `record`); an engine serves one thread."""
        self._handlers: dict[State, Callable[[Rotation, Target], Step]] = {
            State.REQUESTED: self._start,
            State.CREATING: self._create,
            State.STAGED: self._probe,
            State.PROBED: self._promote,
            State.PROMOTED: self._enter_cutover,
            State.CUTOVER_WAIT: self._cutover,
            State.REVOKING: self._revoke,
            State.VERIFYING: self._verify,
            State.ROLLING_BACK: self._roll_back,
            State.AWAITING_NEW_KEY: lambda r, t: handoff.wait_for_key(self, r, t),
            State.AWAITING_REVOCATION: lambda r, t: handoff.wait_for_revocation(self, r, t),
        }

    def advance(self, rotation: Rotation, *, defer: bool = False) -> Step:
        """Run the step the rotation is in; never raises for errors of the rotation itself.

        What the step recorded is written before it returns, unless `defer`: then the caller
        writes it (`flush`) after running further steps under the same lease, as the runner does.
        """
        state = State(rotation.state)
        if state in TERMINAL:
            return Step(rotation, state.value)
        bound = _log.bind(rotation_id=rotation.id, secret=rotation.secret, provider=rotation.provider, step=state.value)
        try:
            target = self.resolve(rotation)
            step = self._handlers[state](rotation, target)
        except LeaseHeld:
            self.forget(rotation.id)
            raise  # this process lost the secret's lease: stop, write nothing more (fencing)
        except RotatorError as exc:
            bound.warning("step.error", error=str(exc), temporary=exc.temporary)
            step = self._on_error(rotation, state, exc)
        if not defer:
            self.flush(step.rotation)
        return step

    # the steps -------------------------------------------------------------------------------

    def _start(self, rot: Rotation, t: Target) -> Step:
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
            how = proof.prove(self.db, secret=rot.secret, provider=t.provider, value=current.value)
        rot = self.record(
            rot,
            event="rotation.started",
            detail={
                "old_key_id": current.value.key_id,
                "old_fingerprint": current.value.fingerprint,
                **({"old_key_proof": how} if how else {}),
            },
            outbox=self.notices("rotation.started", self._payload(rot, {"trigger": rot.trigger, "reason": rot.reason})),
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
                self.audit(
                    rot, "old_key.refused", {"note": "the old key is already refused; the account cannot be compared"}
                )
            return handoff.ask_for_key(self, rot, t, identity)
        return self.move(rot, State.CREATING, event="creating")

    def _create(self, rot: Rotation, t: Target) -> Step:
        provider = _api(t)
        name = key_name(rot.id)
        # nothing can be pending before a create was ever begun
        staged = t.store.read_pending(location=t.location, token=rot.id) if rot.create_started_at else None
        if staged is not None:
            # the key reached the pending slot before a crash: adopt it
            return self.move(
                rot,
                State.STAGED,
                event="key.adopted",
                detail={"key_id": staged.key_id, "fingerprint": staged.fingerprint},
                new_key_id=staged.key_id,
                new_fingerprint=staged.fingerprint,
                staged_at=self.clock(),
            )
        if rot.create_started_at is not None:
            # an earlier create may have happened without its answer reaching us: look before creating
            for lost in (k for k in provider.list_keys() if k.name == name):
                self.before_side_effect(rot)
                provider.revoke_key(key_id=lost.id)
                self.audit(rot, "key.discarded", {"key_id": lost.id, "why": "created, but its secret never reached us"})
        like = self._old_key_info(rot, provider) if provider.copies_scopes else None
        first = rot.create_started_at is None  # no create was ever begun, so nothing sits under this token
        rot = self.record(rot, create_started_at=self.clock())
        self.before_side_effect(rot)
        created = provider.create_key(name=name, like=like)
        failpoints.hit("after-create")
        value = StoredValue.new(api_key=created.secret, key_id=created.id, provider=provider.kind, rotation_id=rot.id)
        self.before_side_effect(rot)
        t.store.stage(location=t.location, token=rot.id, value=value, first=first)
        failpoints.hit("after-stage-write")
        return self.move(
            rot,
            State.STAGED,
            event="key.created",
            detail={"key_id": created.id, "fingerprint": value.fingerprint},
            new_key_id=created.id,
            new_fingerprint=value.fingerprint,
            staged_at=self.clock(),
        )

    def _probe(self, rot: Rotation, t: Target) -> Step:
        value = t.store.read_staged(location=t.location, token=rot.id)
        if value is None:
            raise RotationError(f"{t.location}: the pending version {rot.id} is gone from the store")
        try:
            result = t.provider.probe(key=value.api_key)
        except KeyRefused as exc:
            assert rot.staged_at is not None
            if self.clock() - rot.staged_at < self.settings.probe_deadline:
                raise NotYet(f"new key {value.fingerprint} not accepted yet: {exc}", retry_after=2.0) from None
            raise RotationError(
                f"new key {value.fingerprint} still refused {render(self.settings.probe_deadline)} "
                f"after creation: {exc}"
            ) from None
        detail = {"fingerprint": value.fingerprint, **result.identity}
        if isinstance(t.provider, ApiProvider) and t.provider.copies_scopes:
            detail["scopes"] = self._same_scopes(rot, t.provider)
        elif isinstance(t.provider, DashboardProvider) and (
            problem := handoff.same_account(rot.old_identity or {}, result)
        ):
            raise RotationError(f"the new key {problem}")
        return self.move(rot, State.PROBED, event="key.probed", detail=detail)

    def _promote(self, rot: Rotation, t: Target) -> Step:
        if rot.old_version is None:
            raise RotationError("this rotation recorded no old version to promote over")
        self.before_side_effect(rot)  # a writer that lost its lease must never promote
        t.store.promote(location=t.location, token=rot.id, expected_current=rot.old_version)
        failpoints.hit("after-promote-call")
        now = self.clock()
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
            self.audit(rot, "store.metadata_failed", {"error": str(exc)})
        return self.move(
            rot,
            State.PROMOTED,
            event="key.promoted",
            detail={"fingerprint": rot.new_fingerprint},
            promoted_at=now,
        )

    def _enter_cutover(self, rot: Rotation, t: Target) -> Step:
        return self.move(
            rot,
            State.CUTOVER_WAIT,
            event="cutover.started",
            detail={"min_soak": render(t.policy.cutover.min_soak), "require": list(t.policy.cutover.require)},
        )

    def _cutover(self, rot: Rotation, t: Target) -> Step:
        cutover = t.policy.cutover
        available = {
            "consumers": gate_signals.consumers(self, t),
            "old_key_idle": gate_signals.old_key_idle(self, t, cutover.idle_for),
        }
        verdict = gate.evaluate(cutover, rot, self.clock(), available)
        detail = {"signals": verdict.describe()}
        if verdict.open or (verdict.timed_out and cutover.on_timeout == "revoke"):
            event = "cutover.open" if verdict.open else "cutover.deadline_revoke"
            if isinstance(t.provider, DashboardProvider):
                return handoff.ask_for_revocation(self, rot, t, event, detail)
            return self.move(rot, State.REVOKING, event=event, detail=detail)
        if verdict.timed_out:
            waited = render(cutover.max_wait) if cutover.max_wait else "-"
            return self.hold(rot, f"cutover gate still shut after max_wait {waited}: {verdict.describe()}")
        assert verdict.check_again_at is not None
        return self.wait(rot, verdict.check_again_at, f"cutover gate: {verdict.describe()}")

    def _revoke(self, rot: Rotation, t: Target) -> Step:
        provider = _api(t)
        old_key_id = rot.old_key_id
        if old_key_id is None:
            raise KeyNotProven("this rotation recorded no old key id; nothing to revoke by id")
        if rot.old_key_proof is None:
            rot = self._prove_late(rot, t, provider)
        already = rot.revoke_started_at is not None and old_key_id not in {k.id for k in provider.list_keys()}
        if not already:
            rot = self.record(rot, revoke_started_at=self.clock())
            self.before_side_effect(rot)
            provider.revoke_key(key_id=old_key_id)
            failpoints.hit("after-revoke-call")
        step = self.move(
            rot,
            State.VERIFYING,
            event="key.revoked",
            detail={"key_id": rot.old_key_id},
            revoked_at=self.clock(),
        )
        # of all side effects, a revocation is the one people look for first: on record at once
        self.flush(step.rotation)
        return step

    def _prove_late(self, rot: Rotation, t: Target, provider: ApiProvider) -> Rotation:
        """A rotation begun before proofs existed (an upgraded database): prove its old key now."""
        old = self._old_value(rot, t)
        how = proof.prove(self.db, secret=rot.secret, provider=provider, value=old)
        return self.record(
            rot,
            event="old_key.proven",
            detail={"key_id": rot.old_key_id, "how": how},
            old_key_proof=how,
        )

    def _old_value(self, rot: Rotation, t: Target) -> StoredValue:
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

    def complete_if_old_key_dead(self, rot: Rotation, t: Target) -> Step | None:
        """Probe the old key (the value that was proven): refused → completes; accepted → None; else held."""
        try:
            old = self._old_value(rot, t)
        except RotationError as exc:
            return self.hold(rot, str(exc))
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
            return self.move(rot, State.COMPLETED, event="rotation.completed", detail=detail, finished_at=self.clock())
        return None

    def _verify(self, rot: Rotation, t: Target) -> Step:
        if rot.revoked_at is None:
            raise RotationError("verifying a revocation that was never recorded")
        if (done := self.complete_if_old_key_dead(rot, t)) is not None:
            return done
        waited = self.clock() - rot.revoked_at
        if waited >= self.settings.verify_deadline:
            return self.hold(
                rot,
                f"old key {rot.old_key_id} still accepted {render(self.settings.verify_deadline)} after revocation",
                retry=self.settings.verify_interval,
            )
        return self.wait(
            rot,
            self.clock() + self.settings.verify_interval,
            f"old key {rot.old_key_id} still accepted; probing until refused",
        )

    def _roll_back(self, rot: Rotation, t: Target) -> Step:
        current = t.store.read_current(location=t.location)
        ours = current is not None and (
            current.version_id == rot.id or current.value.fingerprint == rot.new_fingerprint
        )
        if ours:
            return self.hold(
                rot, "the new key is already current: refusing to roll back; fix the cause and let the rotation go on"
            )
        detail: dict[str, Any] = {"reason": rot.failed_reason}
        if isinstance(t.provider, ApiProvider):
            revoked = {rot.new_key_id} if rot.new_key_id else set()
            if rot.create_started_at is not None:
                revoked |= {k.id for k in t.provider.list_keys() if k.name == key_name(rot.id)}
            for key_id in sorted(revoked):
                self.before_side_effect(rot)
                t.provider.revoke_key(key_id=key_id)
            detail["revoked_new_keys"] = sorted(revoked)
        leftover = None
        if not isinstance(t.provider, ApiProvider) and rot.new_fingerprint:
            detail["operator"] = f"revoke the new key {key_name(rot.id)} ({rot.new_fingerprint}) in the dashboard"
            leftover = {"key_id": None, "fingerprint": rot.new_fingerprint, "why": detail["operator"]}
        self.before_side_effect(rot)
        t.store.clear_pending(location=t.location, token=rot.id)
        return self.move(
            rot, State.FAILED, event="rotation.failed", detail=detail, leftover=leftover, finished_at=self.clock()
        )

    def supply(self, rotation: Rotation, key: SecretStr) -> Rotation:
        """An operator hands over a new key; raise KeyRejected (the rotation keeps waiting) on a failed check."""
        supplied = handoff.supply(self, rotation, self.resolve(rotation), key)
        self.flush(supplied)
        return supplied

    def _old_key_info(self, rot: Rotation, provider: ApiProvider) -> KeyInfo:
        found = next((k for k in provider.list_keys() if k.id == rot.old_key_id), None)
        if found is None:
            raise RotationError(f"the old key {rot.old_key_id} is not among the provider's live keys")
        return found

    def _same_scopes(self, rot: Rotation, provider: ApiProvider) -> str:
        keys = {k.id: k for k in provider.list_keys()}
        old, new = keys.get(rot.old_key_id or ""), keys.get(rot.new_key_id or "")
        if new is None:
            raise RotationError(f"the new key {rot.new_key_id} is not among the provider's live keys")
        if old is not None and old.scopes != new.scopes:
            raise RotationError(f"the new key has scopes {list(new.scopes)}, the old key {list(old.scopes)}")
        return ",".join(new.scopes)

    # bookkeeping -------------------------------------------------------------------------------

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
        """Apply `fields` to `rot` now and keep them, with their audit event, for the next write.

        Writing waits for the next call that changes the world (`before_side_effect`) or the
        end of the runner's turn (`flush`): the moves between two such calls are one transaction,
        and what a crash loses is only what the step can redo (every step is idempotent).
        """
        change = Change(
            dict(fields), rot.state, self.clock(), event=event, detail=detail, outbox=outbox, leftover=leftover
        )
        for name, value in fields.items():
            setattr(rot, name, value)
        self._journal.setdefault(rot.id, (rot, []))[1].append(change)
        return rot

    def audit(self, rot: Rotation, event: str, detail: dict[str, Any]) -> None:
        """An audit event of `rot` that changes none of its fields; written with the next write."""
        change = Change({}, rot.state, self.clock(), event=event, detail=detail, moves=False)
        self._journal.setdefault(rot.id, (rot, []))[1].append(change)

    def flush(self, rot: Rotation) -> bool:
        """Write what was recorded for `rot` in one fenced transaction; False when there was nothing.

        Raises LeaseLost (writing nothing) when the lease is no longer this process's.
        """
        recorded, changes = self._journal.pop(rot.id, (rot, []))
        if not changes:
            return False
        self.db.apply(recorded, changes, actor=self.actor)
        for change in changes:
            if change.event is not None and (state := change.fields.get("state")) is not None:
                # said once it is on record: a move whose write failed is redone, and said then
                detail = change.detail or {}
                _log.info(change.event, rotation_id=recorded.id, secret=recorded.secret, state=state, **detail)
        for change in changes:
            if (state := change.fields.get("state")) is not None:
                failpoints.hit(f"after:{state}")
        return True

    def before_side_effect(self, rot: Rotation) -> None:
        """Before a call that changes the world and cannot itself be fenced (create, stage,
        promote, revoke, a hook): what led to it is written, and the lease is proven ours with
        half its TTL to run — a write's own fence check counts only if its answer came in time."""
        self.flush(rot)
        self.db.check_fence(rot.secret)

    def write(self, step: Step) -> Rotation:
        """Write what `step` recorded now (a person's action outside a runner's turn); its rotation."""
        self.flush(step.rotation)
        return step.rotation

    def forget(self, rotation_id: str) -> None:
        """Drop what was recorded and not written (the lease was lost: a stale writer writes nothing)."""
        self._journal.pop(rotation_id, None)

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
        """Move `rot` to `to`: fields, audit event, notifications and a key left alive, in one transaction."""
        check(State(rot.state), to)
        values = {
            "state": to.value,
            "next_attempt_at": self.clock(),
            "waiting_for": "",
            "held_reason": None,
            "held_since": None,
            **fields,
        }
        values["waiting_since"] = self.clock() if values["waiting_for"] else None
        payload = self._payload(rot, detail or {}, state=to.value, failed_reason=values.get("failed_reason"))
        rot = self.record(
            rot, event=event, detail=detail, outbox=self.notices(event, payload), leftover=leftover, **values
        )
        return Step(rot, event)

    @staticmethod
    def _payload(
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

    def wait(self, rot: Rotation, until: datetime, why: str) -> Step:
        if rot.waiting_for != why:
            self.audit(rot, "waiting", {"state": rot.state, "for": why})
        since = rot.waiting_since if rot.waiting_for == why and rot.waiting_since else self.clock()
        rot = self.record(rot, next_attempt_at=until, waiting_for=why, waiting_since=since)
        return Step(rot, why, waiting_until=until)

    def hold(self, rot: Rotation, reason: str, *, retry: timedelta | None = None) -> Step:
        now = self.clock()
        news = rot.held_reason != reason
        if news:
            _log.error("rotation.held", rotation_id=rot.id, secret=rot.secret, state=rot.state, reason=reason)
        until = now + (retry or self.settings.hold_interval)
        rot = self.record(
            rot,
            event="rotation.held" if news else None,
            detail={"state": rot.state, "reason": reason},
            outbox=self.notices("rotation.held", self._payload(rot, {"reason": reason})) if news else (),
            held_reason=reason,
            held_since=rot.held_since or now,
            next_attempt_at=until,
            waiting_for=f"held: {reason}",
        )
        return Step(rot, reason, waiting_until=until, held=True)

    def _on_error(self, rot: Rotation, state: State, exc: RotatorError) -> Step:
        self.flush(rot)  # what the step did before it failed (an intent, a created key) stands
        now = self.clock()
        progress = self.db.step(rot.id, state.value)
        started = progress.started_at if progress else now
        attempts = progress.attempts if progress else 0
        if exc.temporary and now - started < self.settings.step_deadline:
            backoff = min(self.settings.retry_base * (2 ** min(attempts, 16)), self.settings.retry_max)
            delay = timedelta(seconds=exc.retry_after) if exc.retry_after is not None else backoff
            until = now + delay * (1 + random.uniform(0, 0.1))
            self.db.record_attempt(rot.id, state.value, error=str(exc), next_attempt_at=until)
            rot.next_attempt_at = until
            return Step(rot, f"retrying {state.value}: {exc}", waiting_until=until)
        self.db.record_attempt(rot.id, state.value, error=str(exc), next_attempt_at=None)
        if state is State.ROLLING_BACK:
            # cleanup cannot finish (a permanent error, or temporary ones past the deadline): the old
            # key is still current, so the rotation rests as failed, and says what it left behind
            left = {"new_key_id": rot.new_key_id, "pending": rot.id} if rot.new_key_id or rot.staged_at else {}
            leftover = None
            if rot.new_key_id or rot.new_fingerprint:
                leftover = {
                    "key_id": rot.new_key_id,
                    "fingerprint": rot.new_fingerprint,
                    "why": f"the rollback could not revoke the new key: {exc}",
                }
            return self.move(
                rot,
                State.FAILED,
                event="rotation.failed",
                detail={"reason": rot.failed_reason, "cleanup_error": str(exc), **left},
                leftover=leftover,
                failed_reason=f"{rot.failed_reason}; rollback incomplete: {exc}",
                finished_at=now,
            )
        if can_roll_back(state):
            return self.move(
                rot,
                State.ROLLING_BACK,
                event="step.failed",
                detail={"step": state.value, "error": str(exc)},
                failed_reason=str(exc),
            )
        return self.hold(rot, f"{state.value} failed: {exc}")


def _api(t: Target) -> ApiProvider:
    if not isinstance(t.provider, ApiProvider):
        raise RotationError(f"{t.provider.kind} keys are made by a person; this step needs an API-managed provider")
    return t.provider
