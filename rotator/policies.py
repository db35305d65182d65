"""Policy files (`policies/*.yaml`) → validated models; every problem names file and line.

All files of a directory are validated together: a secret may name a policy from another file,
names must be unique across files, and every provider instance and store a secret names must
exist in rotator.yaml. `incident` and `offboarding` have built-in defaults a file may override.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from rotator import yamlfast, yamlsource
from rotator.config import Settings
from rotator.config_parts import Lean
from rotator.durations import Duration, PositiveDuration
from rotator.errors import InputError
from rotator.stores.refs import StoreRef
from rotator.windows import Window


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


GateSignal = Literal["consumers", "old_key_idle"]


class Cutover(_Strict):
    min_soak: Duration = timedelta(0)
    require: list[GateSignal] = []
    max_wait: PositiveDuration | None = None
    on_timeout: Literal["hold", "revoke"] = "hold"
    idle_for: PositiveDuration = timedelta(hours=1)
    """old_key_idle: how long the provider must show no use of the old key."""


class Policy(_Strict):
    max_age: PositiveDuration | None = None
    window: str | None = None
    jitter: Duration | None = None
    notify_before: PositiveDuration | None = None
    cutover: Cutover = Cutover()

    @field_validator("window")
    @classmethod
    def _window_parses(cls, value: str | None) -> str | None:
        if value is not None:
            Window.parse(value)
        return value


class HeaderCredential(_Strict):
    """A header value rotator.yaml keeps (`hooks.credentials`), named rather than written here."""

    credential: str


class HttpHook(_Strict):
    method: Literal["GET", "POST", "PUT"] = "GET"
    url: str
    headers: dict[str, str | HeaderCredential] = {}

    @field_validator("url")
    @classmethod
    def _an_http_url(cls, value: str) -> str:
        parsed = urlsplit(value)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ValueError(f"{value!r} is not an http(s) URL with a host")
        if parsed.username or parsed.password:
            raise ValueError("no user or password in a hook URL: use headers with {credential: NAME}")
        return value


class Hook(_Strict):
    http: HttpHook | None = None
    command: str | None = None
    """The name of a command defined in rotator.yaml (`hooks.commands`)."""

    @field_validator("command", mode="before")
    @classmethod
    def _a_name(cls, value: Any) -> Any:
        if isinstance(value, list):
            raise ValueError(
                "a policy file names a command hook; the command itself is defined in rotator.yaml under "
                "hooks.commands (e.g. command: reload-support-api)"
            )
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> Hook:
        if (self.http is None) == (self.command is None):
            raise ValueError("a hook is either http: {...} or command: NAME")
        return self


class Consumer(_Strict):
    name: str = Field(min_length=1, max_length=200)
    reload: Hook | None = None
    confirm: Hook | None = None


NAME = r"[A-Za-z0-9][A-Za-z0-9._/@+-]{0,199}"


Shared = Annotated[str, AfterValidator(sys.intern)]
"""A name that thousands of secrets repeat (a provider, a policy, a person): one string for all of
them, not one per secret (about 17 MB at 100,000 secrets)."""


class SecretSpec(Lean):
    name: str = Field(pattern=f"^{NAME}$")
    """Letters, digits and . _ / @ + -, starting with a letter or digit."""
    provider: Shared
    store: StoreRef
    policy: Shared
    # tuples: one empty tuple is shared by every secret, an empty list is not
    access: tuple[Shared, ...] = ()
    consumers: tuple[Consumer, ...] = ()
    permissions: tuple[str, ...] = ()
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
    spec: SecretSpec,
    index: int,
    doc: Any,
    path: Path,
    policies: dict[str, Policy],
    settings: Settings,
    teams: dict[str, list[str]],
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
    kind, part = spec.store.chosen()
    instance, location = part.instance, part.location
    store = settings.stores.get(instance)
    if store is None or store.type != kind:
        line = yamlsource.line_of(doc, (*where, "store"))
        known = ", ".join(f"{n} ({s.type})" for n, s in sorted(settings.stores.items())) or "none"
        problems.append(f"{path}:{line}: secret {spec.name!r} names unknown {kind} store {instance!r} (known: {known})")
    provider = settings.providers.get(spec.provider)
    if provider is not None and not any(g.covers(store=instance, location=location) for g in provider.grants):
        line = yamlsource.line_of(doc, (*where, "store"))
        granted = ", ".join(g.describe() for g in provider.grants) or "nothing (no grants: in rotator.yaml)"
        problems.append(
            f"{path}:{line}: secret {spec.name!r}: provider {spec.provider!r} may not serve "
            f"{instance}:{location}; rotator.yaml grants it {granted}"
        )
    problems.extend(_check_hooks(spec, where, doc, path, settings))
    for a_index, who in enumerate(spec.access):
        if who.startswith("team:") and who.removeprefix("team:") not in teams:
            line = yamlsource.line_of(doc, (*where, "access", a_index))
            known = ", ".join(sorted(teams)) or "none defined"
            problems.append(f"{path}:{line}: secret {spec.name!r} names unknown team {who!r} (teams: {known})")
    return problems


def _check_hooks(spec: SecretSpec, where: tuple[str | int, ...], doc: Any, path: Path, settings: Settings) -> list[str]:
    """Consumer hooks stay inside what rotator.yaml allows: named commands, allowed hosts, named credentials."""
    problems = []
    for c_index, consumer in enumerate(spec.consumers):
        for role in ("reload", "confirm"):
            hook: Hook | None = getattr(consumer, role)
            if hook is None:
                continue
            at = (*where, "consumers", c_index, role)
            if hook.command is not None and hook.command not in settings.hooks.commands:
                line = yamlsource.line_of(doc, (*at, "command"))
                known = ", ".join(sorted(settings.hooks.commands)) or "none defined in rotator.yaml hooks.commands"
                problems.append(f"{path}:{line}: unknown command hook {hook.command!r} (known: {known})")
            if hook.http is None:
                continue
            url = urlsplit(hook.http.url)
            if not settings.hooks.allows((url.hostname or "").lower(), url.port):
                line = yamlsource.line_of(doc, (*at, "http", "url"))
                allowed = ", ".join(settings.hooks.allowed_hosts) or "none (hooks.allowed_hosts in rotator.yaml)"
                problems.append(
                    f"{path}:{line}: hook URL host {url.hostname!r} is not allowed; rotator.yaml allows {allowed}"
                )
            for header, value in hook.http.headers.items():
                if isinstance(value, HeaderCredential) and value.credential not in settings.hooks.credentials:
                    line = yamlsource.line_of(doc, (*at, "http", "headers", header))
                    problems.append(
                        f"{path}:{line}: header {header!r} names unknown credential {value.credential!r} "
                        "(define it in rotator.yaml hooks.credentials)"
                    )
    return problems


def load_dir(directory: Path, settings: Settings) -> PolicySet:
    """Load and cross-check every `*.yaml`/`*.yml` file; raise one InputError listing all problems.

    Files are read fast first (libyaml, no lines); if anything is wrong they are read again
    carefully, so every problem is reported with the careful reader's `file:line`.
    """
    if not directory.is_dir():
        raise InputError([f"{directory}: policy directory not found"])
    files = sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")])
    with contextlib.suppress(InputError, ValidationError, yamlfast.Unsure), _collector_paused():
        return _load_files(files, settings, fast=True)
    return _load_files(files, settings, fast=False)


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """A fleet's load makes millions of objects and no garbage cycles: left on, the cycle collector
    walked the growing heap again and again (about a second of 7 at 100,000 secrets). What a load
    made is then frozen out of its reach (it lives until the next reload, and the first collections
    after the load walked all of it three times); the next load hands the last one's back, so an
    old policy set is collected after a reload."""
    gc.unfreeze()
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
        gc.freeze()
    finally:
        if was_on:
            gc.enable()


_READ: dict[Path, tuple[bytes, PolicyFile]] = {}
"""Each policy file read fast, by a digest of its bytes: a reload (SIGHUP) parses and validates
again only the files that changed (the checks across files run every time). A digest, not the
modification time, whose granularity lets a same-size rewrite within milliseconds look unchanged."""


def _read_fast(path: Path) -> PolicyFile:
    try:
        raw = path.read_bytes()
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError):
        raise yamlfast.Unsure("unreadable") from None
    digest = hashlib.blake2b(raw, digest_size=16).digest()
    known = _READ.get(path)
    if known is not None and known[0] == digest:
        return known[1]
    size = len(raw)
    del raw
    doc = yamlfast.load(text, size) or {}
    del text
    items = doc.pop("secrets", None)
    read = PolicyFile.model_validate(doc)
    if isinstance(items, list):
        # one secret at a time, each raw entry dropped once read: the models reuse the memory the
        # parse held instead of landing among its leftovers, which pinned ~100 MB at 100k secrets
        specs = []
        for index, item in enumerate(items):
            specs.append(_SPEC.validate_python(item))
            items[index] = None
        read = read.model_copy(update={"secrets": specs})
    elif items is not None:
        raise yamlfast.Unsure("secrets is not a list")
    _READ[path] = (digest, read)
    return read


_SPEC = TypeAdapter(SecretSpec)


def _load_files(files: list[Path], settings: Settings, *, fast: bool) -> PolicySet:
    problems: list[str] = []
    parsed: list[tuple[Path, Any, PolicyFile]] = []
    if fast:
        for gone in set(_READ) - set(files):
            del _READ[gone]
    for path in files:
        try:
            if fast:
                # no lines to report with: any problem sends every file to the careful reader
                parsed.append((path, None, _read_fast(path)))
            else:
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
    # where each secret was defined, written out only for a problem (a fleet has 100,000 of them)
    seen: dict[str, tuple[Path, Any, int]] = {}
    places: dict[tuple[str, str], tuple[str, Path, Any, int]] = {}

    def at(path: Path, doc: Any, index: int, *keys: str) -> str:
        return f"{path}:{yamlsource.line_of(doc, ('secrets', index, *keys))}"

    for path, doc, pf in parsed:
        for index, spec in enumerate(pf.secrets):
            if spec.name in seen:
                problems.append(
                    f"{at(path, doc, index)}: secret {spec.name!r} already defined at {at(*seen[spec.name])}"
                )
            seen[spec.name] = (path, doc, index)
            part = spec.store.part
            place = (part.instance, part.location)
            first = places.setdefault(place, (spec.name, path, doc, index))
            if first[1:] != (path, doc, index):
                problems.append(
                    f"{at(path, doc, index, 'store')}: secret {spec.name!r} names {place[0]}:{place[1]}, already the "
                    f"place of secret {first[0]!r} at {at(*first[1:])}; one store location holds one secret"
                )
            problems.extend(_check_references(spec, index, doc, path, result.policies, settings, result.teams))
            result.secrets[spec.name] = spec
    if problems:
        raise InputError(problems)
    return result
