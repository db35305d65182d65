"""The cutover gate's signals that need the world: consumers' hooks and the provider's usage data.

Each check persists what it learnt in the rotation's `gate_state`, so a restart neither calls a
reload hook twice nor forgets when the old key was last seen in use.
- consumers: call each consumer's reload hook once, then ask its confirm hook until it reports
  the new key's fingerprint (`sha256:` + 12 hex digits of the key's SHA-256): a JSON answer whose
  `fingerprint` field equals it, or an answer that is exactly it. Hooks are never sent the
  fingerprint (nor the key): a consumer must know it from the key it loaded, so an endpoint that
  echoes its request cannot confirm. Commands are the operator's (rotator.yaml `hooks.commands`),
  HTTP hooks reach only `hooks.allowed_hosts` and never follow redirects.
- old_key_idle: the provider's last-used time of the old key (Brandwave, Boltly), or its per-key
  rate-limit counter dropping by more than our own probe (GoBlue). No telemetry: unavailable.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from rotator import log
from rotator.credentials import read_credential
from rotator.durations import moment
from rotator.engine import hook_calls
from rotator.engine.gate import Signal, SignalCheck, Status
from rotator.errors import RotationError, RotatorError
from rotator.settings.models import HooksSettings
from rotator.settings.policies import Hook, HttpHook
from rotator.state.schema import Rotation

if TYPE_CHECKING:
    from rotator.engine.steps import StepContext, Target

_log = log.get(__name__)


def _headers(hook: HttpHook, hooks: HooksSettings) -> dict[str, str]:
    out = {}
    for name, value in hook.headers.items():
        if isinstance(value, str):
            out[name] = value
        else:
            source = hooks.credentials.get(value.credential)
            if source is None:
                raise RotationError(f"hook header {name!r}: no credential {value.credential!r} in hooks.credentials")
            out[name] = read_credential(source, f"hooks.credentials.{value.credential}").get_secret_value()
    return out


def _call(hook: Hook, hooks: HooksSettings, timeout: float, context: dict[str, str]) -> tuple[bool, str]:
    """Run a hook: (succeeded, its answer). Neither the key nor its fingerprint is handed to a hook."""
    if hook.http is not None:
        url = urlsplit(hook.http.url)
        if not hooks.allows((url.hostname or "").lower(), url.port):
            return False, "host not allowed by hooks.allowed_hosts"
        return hook_calls.http(
            hook.http.method,
            hook.http.url,
            headers=_headers(hook.http, hooks),
            body=context if hook.http.method != "GET" else None,
            timeout=timeout,
        )
    if hook.command is not None:
        defined = hooks.commands.get(hook.command)
        if defined is None:
            return False, f"no command {hook.command!r} in hooks.commands"
        env = {"PATH": "/usr/bin:/bin", **{f"ROTATOR_{k.upper()}": v for k, v in context.items()}}
        return hook_calls.command(defined.command, env=env, timeout=timeout)
    return False, "no hook"


def confirms(answer: str, fingerprint: str) -> bool:
    """A confirm hook's answer names exactly `fingerprint`: a JSON `fingerprint` field, or the whole answer."""
    text = answer.strip()
    try:
        parsed = json.loads(text)
    except ValueError:
        return bool(fingerprint) and text == fingerprint
    return isinstance(parsed, dict) and parsed.get("fingerprint") == fingerprint and bool(fingerprint)


def consumers(engine: StepContext, t: Target) -> SignalCheck:
    def check(rotation: Rotation, now: datetime) -> Signal:
        if not t.spec.consumers:
            return Signal("consumers", Status.UNAVAILABLE, "no consumers declared for this secret")
        state: dict[str, Any] = dict((rotation.gate_state or {}).get("consumers", {}))
        fingerprint = rotation.new_fingerprint or ""
        timeout = engine.settings.hook_timeout.total_seconds()
        context = {"secret": rotation.secret, "rotation_id": rotation.id}
        waiting = []
        for consumer in t.spec.consumers:
            seen = dict(state.get(consumer.name, {}))
            if consumer.reload is not None and not seen.get("reloaded"):
                engine.before_side_effect(rotation)
                ok, _ = _call(consumer.reload, t.hooks, timeout, context)
                seen["reloaded"] = ok
                engine.audit(rotation, "consumer.reload", {"consumer": consumer.name, "ok": ok})
                # written at once: a restart must not call the reload hook again
                state[consumer.name] = seen
                _save(engine, rotation, "consumers", state)
                engine.flush(rotation)
            if consumer.confirm is None:
                state[consumer.name] = seen
                return Signal("consumers", Status.UNAVAILABLE, f"{consumer.name} has no confirm hook")
            if not seen.get("confirmed"):
                ok, answer = _call(consumer.confirm, t.hooks, timeout, context)
                seen["confirmed"] = ok and confirms(answer, fingerprint)
                if seen["confirmed"]:
                    engine.audit(
                        rotation, "consumer.confirmed", {"consumer": consumer.name, "fingerprint": fingerprint}
                    )
            state[consumer.name] = seen
            if not seen.get("confirmed"):
                waiting.append(consumer.name)
        _save(engine, rotation, "consumers", state)
        if waiting:
            return Signal(
                "consumers",
                Status.WAITING,
                f"not yet on the new key: {', '.join(waiting)}",
                now + engine.settings.gate_poll,
            )
        return Signal("consumers", Status.PASSED, "every consumer reports the new key")

    return check


def old_key_idle(engine: StepContext, t: Target, idle_for: timedelta) -> SignalCheck:
    def check(rotation: Rotation, now: datetime) -> Signal:
        assert rotation.old_version is not None
        old = t.store.read_version(location=t.location, version_id=rotation.old_version)
        if old is None:
            return Signal("old_key_idle", Status.UNAVAILABLE, "the old key is gone from the store")
        try:
            usage = t.provider.usage(key_id=rotation.old_key_id, key=old.api_key)
        except RotatorError as exc:
            return Signal(
                "old_key_idle", Status.WAITING, f"usage unknown for now: {exc}", now + engine.settings.gate_poll
            )
        if usage is None:
            return Signal("old_key_idle", Status.UNAVAILABLE, f"{t.provider.kind} shows no usage of a key")
        if usage.counter_remaining is not None:
            last_used = _counter(engine, rotation, usage.counter_remaining, now)
        else:
            last_used = usage.last_used_at
        if last_used is None or now - last_used >= idle_for:
            return Signal(
                "old_key_idle",
                Status.PASSED,
                "no use seen" if last_used is None else f"last used {moment(last_used)}",
            )
        return Signal(
            "old_key_idle",
            Status.WAITING,
            f"old key used at {moment(last_used)}",
            min(last_used + idle_for, now + engine.settings.gate_poll),
        )

    return check


def _counter(engine: StepContext, rotation: Rotation, remaining: int, now: datetime) -> datetime | None:
    """From a per-key counter, when the old key was last used by someone other than us."""
    state = dict((rotation.gate_state or {}).get("old_key_counter", {}))
    previous = state.get("remaining")
    if previous is not None and previous - remaining > 1:  # our own probe accounts for one
        state["used_at"] = now.isoformat()
    elif previous is None:
        state["used_at"] = now.isoformat()  # no baseline yet: count from the first look
    state["remaining"] = remaining
    _save(engine, rotation, "old_key_counter", state)
    used_at = state.get("used_at")
    return datetime.fromisoformat(used_at) if isinstance(used_at, str) else None


def _save(engine: StepContext, rotation: Rotation, key: str, value: dict[str, Any]) -> None:
    engine.record(rotation, gate_state={**(rotation.gate_state or {}), key: value})
