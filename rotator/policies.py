"""Policy files (`policies/*.yaml`) → validated models; every problem names file and line.

All files of a directory are validated together: a secret may name a policy from another file,
names must be unique across files, and every provider instance and store a secret names must
exist in rotator.yaml. `incident` and `offboarding` have built-in defaults a file may override.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from rotator import yamlsource
from rotator.config import Settings
from rotator.durations import Duration
from rotator.errors import InputError
from rotator.windows import Window


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


GateSignal = Literal["consumers", "old_key_idle"]


class Cutover(_Strict):
    min_soak: Duration = timedelta(0)
    require: list[GateSignal] = []
    max_wait: Duration | None = None
    on_timeout: Literal["hold", "revoke"] = "hold"
    idle_for: Duration = timedelta(hours=1)
    """old_key_idle: how long the provider must show no use of the old key."""


class Policy(_Strict):
    max_age: Duration | None = None
    window: str | None = None
    jitter: Duration | None = None
    notify_before: Duration | None = None
    cutover: Cutover = Cutover()

    @field_validator("window")
    @classmethod
    def _window_parses(cls, value: str | None) -> str | None:
        if value is not None:
            Window.parse(value)
        return value


class AwsRef(_Strict):
    secret_id: str
    instance: str = "aws"


class VaultRef(_Strict):
    path: str
    mount: str = "secret"
    instance: str = "vault"

    @field_validator("path")
    @classmethod
    def _relative(cls, value: str) -> str:
        if not value.strip("/") or ":" in value:
            raise ValueError("a KV path like support/brandwave (no mount, no ':')")
        return value.strip("/")


class StoreRef(_Strict):
    aws: AwsRef | None = None
    vault: VaultRef | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> StoreRef:
        if (self.aws is None) == (self.vault is None):
            raise ValueError("name exactly one store: {aws: {secret_id: prod/app/key}} or {vault: {path: app/key}}")
        return self

    @property
    def instance(self) -> str:
        return self.aws.instance if self.aws is not None else self.vault.instance  # type: ignore[union-attr]

    @property
    def location(self) -> str:
        """The secret's place in its store: an AWS secret id, or `<mount>:<path>` in Vault."""
        if self.aws is not None:
            return self.aws.secret_id
        assert self.vault is not None
        return f"{self.vault.mount}:{self.vault.path}"


class HttpHook(_Strict):
    method: Literal["GET", "POST", "PUT"] = "GET"
    url: str
    headers: dict[str, str] = {}


class Hook(_Strict):
    http: HttpHook | None = None
    command: list[str] | None = None


class Consumer(_Strict):
    name: str
    reload: Hook | None = None
    confirm: Hook | None = None


class SecretSpec(_Strict):
    name: str
    provider: str
    store: StoreRef
    policy: str
    access: list[str] = []
    consumers: list[Consumer] = []
    permissions: list[str] = []
    """What the key must be allowed (shown to an operator making it in a dashboard)."""


class PolicyFile(_Strict):
    policies: dict[str, Policy] = {}
    secrets: list[SecretSpec] = []
    teams: dict[str, list[str]] = {}


BUILT_IN = {
    "incident": Policy(cutover=Cutover(min_soak=timedelta(0), max_wait=timedelta(minutes=10), on_timeout="revoke")),
    "offboarding": Policy(
        cutover=Cutover(min_soak=timedelta(minutes=15), max_wait=timedelta(hours=8), on_timeout="revoke")
    ),
}


@dataclass
class PolicySet:
    policies: dict[str, Policy] = field(default_factory=lambda: dict(BUILT_IN))
    secrets: dict[str, SecretSpec] = field(default_factory=dict)
    teams: dict[str, list[str]] = field(default_factory=dict)

    def secret(self, name: str) -> SecretSpec:
        try:
            return self.secrets[name]
        except KeyError:
            known = ", ".join(sorted(self.secrets)) or "none"
            raise InputError([f"unknown secret {name!r} (known: {known})"]) from None


def _check_references(
    spec: SecretSpec, index: int, doc: Any, path: Path, policies: dict[str, Policy], settings: Settings
) -> list[str]:
    problems = []
    where = ("secrets", index)
    if spec.policy not in policies:
        line = yamlsource.line_of(doc, (*where, "policy"))
        problems.append(f"{path}:{line}: secret {spec.name!r} names unknown policy {spec.policy!r}")
    if spec.provider not in settings.providers:
        line = yamlsource.line_of(doc, (*where, "provider"))
        known = ", ".join(sorted(settings.providers)) or "none configured in rotator.yaml"
        problems.append(
            f"{path}:{line}: secret {spec.name!r} names unknown provider {spec.provider!r} (known: {known})"
        )
    kind = "aws" if spec.store.aws is not None else "vault"
    store = settings.stores.get(spec.store.instance)
    if store is None or store.type != kind:
        line = yamlsource.line_of(doc, (*where, "store"))
        known = ", ".join(f"{n} ({s.type})" for n, s in sorted(settings.stores.items())) or "none"
        problems.append(
            f"{path}:{line}: secret {spec.name!r} names unknown {kind} store {spec.store.instance!r} (known: {known})"
        )
    return problems


def load_dir(directory: Path, settings: Settings) -> PolicySet:
    """Load and cross-check every `*.yaml`/`*.yml` file; raise one InputError listing all problems."""
    if not directory.is_dir():
        raise InputError([f"{directory}: policy directory not found"])
    problems: list[str] = []
    parsed: list[tuple[Path, Any, PolicyFile]] = []
    for path in sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")]):
        try:
            doc = yamlsource.load(path)
            parsed.append((path, doc, yamlsource.validate(PolicyFile, doc, path)))
        except InputError as exc:
            problems.extend(exc.problems)

    result = PolicySet()
    defined_at: dict[str, str] = {}
    for path, doc, pf in parsed:
        for name, policy in pf.policies.items():
            line = yamlsource.line_of(doc, ("policies", name))
            if name in defined_at:
                problems.append(f"{path}:{line}: policy {name!r} already defined at {defined_at[name]}")
            defined_at[name] = f"{path}:{line}"
            result.policies[name] = policy
        for team, members in pf.teams.items():
            result.teams.setdefault(team, []).extend(members)
    seen: dict[str, str] = {}
    for path, doc, pf in parsed:
        for index, spec in enumerate(pf.secrets):
            line = yamlsource.line_of(doc, ("secrets", index))
            if spec.name in seen:
                problems.append(f"{path}:{line}: secret {spec.name!r} already defined at {seen[spec.name]}")
            seen[spec.name] = f"{path}:{line}"
            problems.extend(_check_references(spec, index, doc, path, result.policies, settings))
            result.secrets[spec.name] = spec
    if problems:
        raise InputError(problems)
    return result
