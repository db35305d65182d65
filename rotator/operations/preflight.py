"""Checks that change nothing: does each admin credential work, is each store location readable
and writable the way a rotation needs? `rotator check` prints them all; `rotator rotate` runs
the quick ones first, so a missing credential or permission is an error in seconds that names
the fix, before any rotation is recorded."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from rotator.app import App
from rotator.errors import KeyRefused, PermissionDenied, RotatorError
from rotator.plugin.provider import ApiProvider, DashboardProvider


@dataclass(frozen=True)
class Check:
    item: str
    ok: bool
    detail: str
    temporary: bool = False
    """Failed for a reason that may pass by itself (unreachable, throttled)."""

    def line(self) -> str:
        return f"{'ok  ' if self.ok else 'FAIL'}  {self.item}: {self.detail}"

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def provider_check(app: App, secret: str) -> Check:
    """The provider instance of `secret` answers its admin credential (API providers) or the stored key."""
    spec = app.policies.secret(secret)
    item = f"provider {spec.provider}"
    try:
        provider = app.provider_for(spec)
        if isinstance(provider, ApiProvider):
            keys = provider.list_keys()
            listed = f"{len(keys)} live key{'' if len(keys) == 1 else 's'} listed"
            return Check(item, True, f"admin credential accepted ({listed})")
        if not isinstance(provider, DashboardProvider):
            return Check(item, False, f"unknown kind of provider {provider.kind}")
        current = app.store(spec.store.instance).read_current(location=spec.store.location)
        if current is None:
            return Check(item, False, f"{spec.store.location} holds no key to probe with")
        provider.probe(key=current.value.api_key)
        return Check(item, True, f"the stored key of {secret} is accepted (keys are made by a person)")
    except (KeyRefused, PermissionDenied) as exc:
        fix = f"check providers.{spec.provider}'s admin credential in rotator.yaml and its permissions"
        return Check(item, False, f"{exc}; {fix}")
    except RotatorError as exc:
        return Check(item, False, str(exc), exc.temporary)


def store_checks(app: App, secret: str, *, writes: bool) -> list[Check]:
    """Read access to `secret`'s location, and with `writes` every permission a rotation needs there."""
    spec = app.policies.secret(secret)
    item = f"store {spec.store.instance}:{spec.store.location}"
    try:
        store = app.store(spec.store.instance)
        if not writes:
            current = store.read_current(location=spec.store.location)
            if current is None:
                return [Check(item, False, "no such secret, or it has no current value: store the key in use first")]
            return [Check(item, True, "readable")]
        return [
            Check(f"{item} {what}", reason is None, reason or "allowed")
            for what, reason in store.check_access(location=spec.store.location)
        ]
    except RotatorError as exc:
        return [Check(item, False, str(exc), exc.temporary)]


def run(app: App, secrets: list[str], *, writes: bool) -> list[Check]:
    """One provider check per provider instance, and the store checks of every secret."""
    checks: list[Check] = []
    seen: set[str] = set()
    for name in secrets:
        instance = app.policies.secret(name).provider
        if instance not in seen:
            seen.add(instance)
            checks.append(provider_check(app, name))
        checks.extend(store_checks(app, name, writes=writes))
    return checks
