"""`reconcile`: keys rotator created that nothing tracks, pending versions no rotation owns, and
keys a rotation left alive on purpose or by failure (an abort at the gate, a rollback that could
not finish) until they are revoked or a person acknowledges them.

A key is never called orphaned while it is the current key of any managed secret, or a key a
rotation in flight still needs, whatever the state database says and whichever provider instance
lists it (two instances, of two teams say, may reach one vendor account): reconcile must not cause
the outage it guards against. A key a rotation of another instance made is that instance's to
judge, never this one's.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from rotator.app import App
from rotator.keys import rotation_id_of
from rotator.lifecycle import State
from rotator.plugin.provider import ApiProvider
from rotator.settings.policies import SecretSpec


@dataclass(frozen=True)
class Finding:
    kind: str  # "key" or "pending"
    where: str
    ident: str
    why: str

    def describe(self, *, fixed: bool) -> str:
        if self.kind == "left-alive":
            return f"left alive {self.where} {self.ident}: {self.why}"
        action = "revoked" if self.kind == "key" else "cleared"
        prefix = action if fixed else "orphan"
        return f"{prefix} {self.kind} {self.where} {self.ident}: {self.why}"


def _in_use(app: App) -> set[str]:
    """The key ids no fix may revoke: every managed secret's current key (across all provider
    instances), both keys of every rotation in flight (the old one lives until its gate opens,
    whichever rotation made it: after a restore from backup that rotation may be unknown here),
    and the keys left alive on purpose, which only a person decides about (`--ack`)."""
    in_use = set()
    for spec in app.policies.secrets.values():
        current = app.store(spec.store.instance).read_current(location=spec.store.location)
        if current is not None and current.value.key_id:
            in_use.add(current.value.key_id)
    for rotation in app.db.active():
        in_use.update(k for k in (rotation.old_key_id, rotation.new_key_id) if k)
    in_use.update(row.key_id for row in app.db.leftovers() if row.key_id)
    return in_use


def _orphan_keys(app: App, specs: list[SecretSpec], in_use: set[str]) -> list[tuple[SecretSpec, Finding]]:
    provider = app.provider_for(specs[0])
    if not isinstance(provider, ApiProvider):
        return []  # a person made these keys; nothing to list
    found = []
    for key in provider.list_keys():
        rid = rotation_id_of(key.name)
        if rid is None or key.id in in_use:
            continue
        rotation = app.db.find(rid)
        if rotation is None:
            why = "no rotation with this id"
        elif not rotation.terminal or rotation.provider != specs[0].provider:
            continue
        elif rotation.state == State.FAILED:
            why = f"rotation {rid} failed"
        elif rotation.new_key_id != key.id:
            why = f"rotation {rid} completed with key {rotation.new_key_id}, not this one"
        else:
            why = f"rotation {rid} completed, yet its key is no longer current"
        found.append((specs[0], Finding("key", specs[0].provider, f"{key.id} ({key.name})", why)))
    return found


def _left_alive(app: App, *, actor: str) -> list[Finding]:
    """Recorded leftovers; one the provider no longer lists (revoked by someone) is closed, audited."""
    found = []
    live: dict[str, set[str] | None] = {}
    for row in app.db.leftovers():
        if row.secret in app.policies.secrets and row.key_id:
            spec = app.policies.secret(row.secret)
            if spec.provider not in live:
                provider = app.provider_for(spec)
                live[spec.provider] = (
                    {k.id for k in provider.list_keys()} if isinstance(provider, ApiProvider) else None
                )
            keys = live[spec.provider]
            if keys is not None and row.key_id not in keys:
                app.db.resolve_leftover(row.id, resolution="revoked (no longer listed by the provider)", actor=actor)
                continue
        name = f"{row.key_id} ({row.fingerprint})" if row.key_id else str(row.fingerprint)
        why = f"{row.why}; since {row.recorded_at:%Y-%m-%d %H:%M:%S} UTC; `rotator reconcile --ack {row.id}`"
        found.append(Finding("left-alive", row.secret, f"#{row.id} key {name}", why))
    return found


def reconcile(app: App, *, fix: bool, actor: str) -> list[Finding]:
    """Report (and with `fix`, clean) what rotator left behind; every fix goes to the audit trail."""
    findings: list[Finding] = []
    by_provider: dict[str, list[SecretSpec]] = defaultdict(list)
    for spec in app.policies.secrets.values():
        by_provider[spec.provider].append(spec)
    in_use = _in_use(app) if by_provider else set()
    for specs in by_provider.values():
        for spec, finding in _orphan_keys(app, specs, in_use):
            provider = app.provider_for(spec)
            if fix and isinstance(provider, ApiProvider):
                provider.revoke_key(key_id=finding.ident.split(" ")[0])
                app.db.audit(
                    None,
                    secret=spec.name,
                    actor=actor,
                    event="reconcile.key_revoked",
                    detail={"key": finding.ident, "why": finding.why},
                )
            findings.append(finding)
    findings.extend(_left_alive(app, actor=actor))
    for spec in app.policies.secrets.values():
        store = app.store(spec.store.instance)
        active = app.db.active_for(spec.name)
        for token in store.pending_tokens(location=spec.store.location):
            if active is not None and active.id == token:
                continue
            finding = Finding("pending", spec.store.location, token, "no rotation in flight owns this version")
            if fix:
                store.clear_pending(location=spec.store.location, token=token)
                app.db.audit(
                    None,
                    secret=spec.name,
                    actor=actor,
                    event="reconcile.pending_cleared",
                    detail={"version": token},
                )
            findings.append(finding)
    return findings
