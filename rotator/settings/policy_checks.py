"""Policy files checked against rotator.yaml and against each other.

Every reference a secret makes (policy, provider instance, store location, hook command, hook
credential, hook host, people group) must be one its file's team may make, and no store location
is named by two secrets, however it is spelled (AWS name, full or partial ARN; Vault namespace +
mount + path). Each problem is `file:line: message`, naming the team where one is involved.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from rotator.plugin.settings import ProviderSettings, StoreRefPart, StoreSettings
from rotator.policy.rules import BUILT_IN
from rotator.settings.models import HooksSettings, Settings
from rotator.settings.policy_models import HeaderCredential, Hook, SecretSpec
from rotator.settings.tenancy import owners
from rotator.yamlfiles import source as yamlsource


def file_team(path: Path, settings: Settings) -> tuple[str | None, str | None]:
    """(the team owning a policy file, or a problem); no teams configured: (None, None)."""
    if not settings.teams:
        return None, None
    found = owners(path.name, settings.teams)
    if len(found) == 1:
        return found[0], None
    if not found:
        listed = "; ".join(f"{n}: {', '.join(t.policy_files)}" for n, t in sorted(settings.teams.items()))
        return None, (
            f"{path}:1: no team in rotator.yaml owns this policy file; add it to one team's policy_files ({listed})"
        )
    return None, f"{path}:1: owned by several teams ({', '.join(found)}); each policy file belongs to exactly one team"


def built_in_redefined(path: Path, doc: Any, names: list[str]) -> list[str]:
    return [
        f"{path}:{yamlsource.line_of(doc, ('policies', name))}: policy {name!r} is built in and the operator's: "
        f"tune it in rotator.yaml under policies.{name}, not in a policy file"
        for name in names
        if name in BUILT_IN
    ]


_Seen = tuple[str | None, str, Callable[[], str]]
"""A secret on a store location: the account it names (None: any), its name, and where it is written."""


@dataclass
class Places:
    """Store locations seen so far, by canonical identity, to refuse a second secret on one."""

    seen: dict[tuple[str, ...], _Seen | list[_Seen]] = field(default_factory=dict)
    """The secret on each location; a list where several name it (in other accounts, or wrongly)."""

    def add(self, spec: SecretSpec, settings: Settings, where: Callable[[], str]) -> list[str]:
        kind, part = spec.store.chosen()
        store = settings.stores.get(part.instance)
        if store is None or store.type != kind:
            return []  # reported as an unknown store
        problems = []
        for identity, account in part.identities(store):
            mine = (account, spec.name, where)
            earlier = self.seen.setdefault(identity, mine)
            if earlier is mine:
                continue  # the first on this location: a fleet's every secret
            if not isinstance(earlier, list):
                earlier = self.seen[identity] = [earlier]
            for other_account, other, other_where in earlier:
                if other != spec.name and (account is None or other_account is None or account == other_account):
                    problems.append(
                        f"{where()}: secret {spec.name!r} names {part.instance}:{part.location}, the same secret as "
                        f"secret {other!r} at {other_where()}; one store location holds one secret"
                    )
                    break
            earlier.append(mine)
        return problems[:1]


def check_secret(
    spec: SecretSpec,
    index: int,
    doc: Any,
    path: Path,
    *,
    settings: Settings,
    team: str | None,
    policy_team: dict[str, str | None],
    groups: dict[str, list[str]],
    cleared: set[tuple[Any, ...]],
) -> list[str]:
    """What in one secret its team may not use, or rotator.yaml does not define. `cleared` holds
    what secrets found clean in this load named, but for their store location: a fleet's
    100,000 secrets name a handful of policies, providers and stores, so a secret naming the same
    (in a file of the same team) has only its location checked."""

    def at(*keys: str | int) -> str:
        return f"{path}:{yamlsource.line_of(doc, ('secrets', index, *keys))}"

    kind, part = spec.store.chosen()
    # a consumer's hooks are checked every time: few secrets have them, and they do not hash
    named = None if spec.consumers else (team, spec.policy, spec.provider, kind, part.instance, spec.access)
    if named is not None and named in cleared:
        store = settings.stores[part.instance]
        return _location_problems(spec, part, store, settings.providers[spec.provider], at)
    problems = _problems(spec, at, settings=settings, team=team, policy_team=policy_team, groups=groups)
    if named is not None and not problems:
        cleared.add(named)
    return problems


def _problems(
    spec: SecretSpec,
    at: Callable[..., str],
    *,
    settings: Settings,
    team: str | None,
    policy_team: dict[str, str | None],
    groups: dict[str, list[str]],
) -> list[str]:
    problems = []
    if spec.policy not in policy_team:
        # only the policies this secret may follow: another team's names are none of its business
        usable = sorted(name for name, owner in policy_team.items() if owner in (None, team))
        problems.append(
            f"{at('policy')}: secret {spec.name!r} names unknown policy {spec.policy!r}{_near(spec.policy, usable)}"
        )
    elif policy_team[spec.policy] not in (None, team):
        problems.append(
            f"{at('policy')}: secret {spec.name!r} (team {team!r}) names policy {spec.policy!r} of team "
            f"{policy_team[spec.policy]!r}; a team's secrets follow its own policies or the built-in ones"
        )
    provider = settings.providers.get(spec.provider)
    if provider is None:
        usable = sorted(settings.providers if team is None else settings.teams[team].providers)
        problems.append(
            f"{at('provider')}: secret {spec.name!r} names unknown provider {spec.provider!r}"
            + (_near(spec.provider, usable) if usable else " (none configured in rotator.yaml)")
        )
    elif team is not None and spec.provider not in settings.teams[team].providers:
        allowed = ", ".join(settings.teams[team].providers) or "none"
        problems.append(
            f"{at('provider')}: secret {spec.name!r}: team {team!r} may not use provider {spec.provider!r} "
            f"(rotator.yaml teams.{team}.providers: {allowed})"
        )
    kind, part = spec.store.chosen()
    store = settings.stores.get(part.instance)
    if store is None or store.type != kind:
        known = ", ".join(f"{n} ({s.type})" for n, s in sorted(settings.stores.items())) or "none"
        problems.append(
            f"{at('store')}: secret {spec.name!r} names unknown {kind} store {part.instance!r} (known: {known})"
        )
    else:
        problems.extend(_location_problems(spec, part, store, provider, at))
    problems.extend(_check_hooks(spec, at, settings.hooks_for(team), team))
    for a_index, who in enumerate(spec.access):
        if who.startswith("team:") and who.removeprefix("team:") not in groups:
            known = ", ".join(sorted(groups)) or "none defined"
            problems.append(
                f"{at('access', a_index)}: secret {spec.name!r} names unknown team {who!r} "
                f"(teams{' of ' + repr(team) + ' files' if team else ''}: {known})"
            )
    return problems


def _location_problems(
    spec: SecretSpec,
    part: StoreRefPart,
    store: StoreSettings,
    provider: ProviderSettings | None,
    at: Callable[..., str],
) -> list[str]:
    """What is wrong with where the secret is kept: the location itself, or the provider's grants."""
    problems = [f"{at('store')}: secret {spec.name!r}: {p}" for p in part.problems(store)]
    if provider is not None and not any(part.granted(g, store) for g in provider.grants):
        granted = ", ".join(g.describe() for g in provider.grants) or "nothing (no grants: in rotator.yaml)"
        problems.append(
            f"{at('store')}: secret {spec.name!r}: provider {spec.provider!r} may not serve "
            f"{part.instance}:{part.location}; rotator.yaml grants it {granted}"
        )
    return problems


def _check_hooks(spec: SecretSpec, at: Callable[..., str], hooks: HooksSettings, team: str | None) -> list[str]:
    """Consumer hooks stay inside what rotator.yaml allows the team: named commands, hosts, credentials."""
    problems = []
    whose = f"rotator.yaml teams.{team}" if team is not None else "rotator.yaml hooks"
    for_team = f" for team {team!r}" if team is not None else ""
    for c_index, consumer in enumerate(spec.consumers):
        for role in ("reload", "confirm"):
            hook: Hook | None = getattr(consumer, role)
            if hook is None:
                continue
            here = ("consumers", c_index, role)
            if hook.command is not None and hook.command not in hooks.commands:
                known = ", ".join(sorted(hooks.commands)) or "none"
                problems.append(
                    f"{at(*here, 'command')}: unknown command hook {hook.command!r} "
                    f"(known{for_team}: {known}; commands are defined in rotator.yaml hooks.commands"
                    f"{' and allowed in ' + whose + '.commands' if team else ''})"
                )
            if hook.http is None:
                continue
            url = urlsplit(hook.http.url)  # its port was proven readable when the hook was read
            if not hooks.allows((url.hostname or "").lower(), url.port):
                allowed = ", ".join(hooks.allowed_hosts) or "none (hooks.allowed_hosts in rotator.yaml)"
                problems.append(
                    f"{at(*here, 'http', 'url')}: hook URL host {url.hostname!r} is not allowed; "
                    f"rotator.yaml allows {allowed}{for_team}"
                )
            for header, value in hook.http.headers.items():
                if isinstance(value, HeaderCredential) and value.credential not in hooks.credentials:
                    known = ", ".join(sorted(hooks.credentials)) or "none"
                    allow = f" and allow it in {whose}.credentials" if team else ""
                    problems.append(
                        f"{at(*here, 'http', 'headers', header)}: header {header!r} names unknown credential "
                        f"{value.credential!r} (known{for_team}: {known}; define it in rotator.yaml "
                        f"hooks.credentials{allow})"
                    )
    return problems


def _near(name: str, known: list[str]) -> str:
    """` (did you mean 'x'?)` for a close name, else the names there are."""
    import difflib

    close = difflib.get_close_matches(name, known, n=1)
    return f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(known) or 'none'})"
