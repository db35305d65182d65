"""Policy files (`policies/*.yaml`) → validated models; every problem names file and line.

All files of a directory are validated together: names are unique across files, a file belongs
to one rotator.yaml team (when there are teams) and its secrets may use only what that team is
allowed (policy_checks). `incident` and `offboarding` are built in: rotator.yaml tunes them, a
policy file may only name them.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import gc
import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from rotator.errors import InputError
from rotator.policy.rules import BUILT_IN, Policy
from rotator.settings import policy_checks as checks
from rotator.settings import policy_entries as entries
from rotator.settings.models import Settings
from rotator.settings.policy_models import (
    NAME,
    Consumer,
    HeaderCredential,
    Hook,
    HttpHook,
    Place,
    PolicyFile,
    SecretEntry,
    SecretSpec,
)
from rotator.stores.refs import StoreRef
from rotator.yamlfiles import fast as yamlfast
from rotator.yamlfiles import lines as yamllines
from rotator.yamlfiles import problems as yamlproblems
from rotator.yamlfiles import slices as yamlslices
from rotator.yamlfiles import source as yamlsource

__all__ = [
    "NAME",
    "Consumer",
    "HeaderCredential",
    "Hook",
    "HttpHook",
    "Place",
    "PolicyFile",
    "PolicySet",
    "SecretEntry",
    "SecretSpec",
    "StoreRef",
    "load_dir",
]


@dataclass
class PolicySet:
    policies: dict[str, Policy] = field(default_factory=lambda: dict(BUILT_IN))
    secrets: dict[str, SecretSpec] = field(default_factory=dict)
    teams: dict[str, list[str]] = field(default_factory=dict)
    """People groups (`access: [team:NAME]`) of the files no rotator.yaml team owns: all of them
    when rotator.yaml has no `teams:`."""
    owners: dict[str, str] = field(default_factory=dict)
    """Secret → the rotator.yaml team whose file defines it (empty without `teams:`)."""
    team_groups: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    """Each rotator.yaml team's people groups: one team's files cannot add a person to another's."""

    def team_of(self, secret: str) -> str | None:
        return self.owners.get(secret)

    def groups_of(self, secret: str) -> dict[str, list[str]]:
        """The people groups a secret's `access: [team:NAME]` refers to."""
        team = self.owners.get(secret)
        return self.teams if team is None else self.team_groups.get(team, {})

    def secret(self, name: str) -> SecretSpec:
        try:
            return self.secrets[name]
        except KeyError:
            from rotator.log import redact

            if redact(name) != name:
                raise InputError([PASTED_KEY]) from None
            # a fleet has 100,000 names: a few near the one asked for, not all of them
            near = difflib.get_close_matches(name, list(self.secrets), n=5) if len(self.secrets) > 10 else None
            known = ", ".join(near if near is not None else sorted(self.secrets)) or "none"
            label = "close" if near is not None else "known"
            raise InputError(
                [f"unknown secret {name!r} ({label}: {known or 'none'}; {len(self.secrets)} in all)"]
            ) from None


PASTED_KEY = (
    "that argument looks like a key, not a name (it is not repeated here); it is now in your shell's "
    "history and was in the process list: if it is a live key, treat it as leaked "
    "(`rotator incident --leaked-key -` reads it from standard input)"
)


def load_dir(directory: Path, settings: Settings) -> PolicySet:
    """Load and cross-check every `*.yaml`/`*.yml` file; raise one InputError listing all problems.

    Files are read fast first (libyaml, no lines); if anything is wrong they are read again
    carefully, so every problem is reported with the careful reader's `file:line`.
    """
    if not directory.is_dir():
        raise InputError([f"{directory}: policy directory not found"])
    try:
        # glob finds nothing in a directory it may not read: that is no empty directory
        os.scandir(directory).close()
    except OSError as exc:
        raise InputError([f"{directory}: cannot read the policy directory ({exc.strerror})"]) from None
    files = sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")])
    outside = _outside(directory, files)
    if outside:
        raise InputError(outside)
    try:
        with _collector_paused():
            return _load_files(files, settings, fast=True)
    except _FastProblems as exc:
        if sum(path.stat().st_size for path in files) > yamllines.BIG:
            located = yamllines.resolve(exc.problems, exc.lines)
            if located is not None:
                raise InputError(located) from None
    except yamlfast.Unsure:
        if sum(path.stat().st_size for path in files) > yamllines.BIG:
            # what the careful reader's pre-check refuses, it refuses at once: no events pass for it
            found = [
                problem
                for path in files
                if yamlsource.precheck(path.read_text(encoding="utf-8", errors="replace")) is None
                for problem in yamllines.structure_problems(path, yamlsource.value_problem)
            ]
            if found:
                raise InputError(found) from None
    except (InputError, ValidationError):
        pass
    return _load_files(files, settings, fast=False)


class _FastProblems(InputError):
    """Problems the fast read found, their lines still placeholders (yamllines)."""

    def __init__(self, problems: list[str], lines: list[yamllines.Lines]) -> None:
        super().__init__(problems)
        self.lines = lines


def _outside(directory: Path, files: list[Path]) -> list[str]:
    """Files that are links to somewhere outside the policy directory: whoever may commit a link
    there would otherwise have rotator read any file it can."""
    home = directory.resolve()
    problems = []
    for path in files:
        if not path.is_symlink():
            if not path.is_file():
                problems.append(f"{path}:1: not a file (a directory?); policy files are files")
            continue
        try:
            target = path.resolve(strict=True)
        except (OSError, RuntimeError):
            problems.append(f"{path}:1: a symbolic link that leads nowhere (dangling, or a loop)")
            continue
        if not target.is_relative_to(home):
            problems.append(f"{path}:1: a symbolic link to {target}, outside the policy directory {home}")
        elif not target.is_file():
            problems.append(f"{path}:1: a symbolic link to {target}, which is not a file")
    return problems


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


_Read = tuple[PolicyFile, list[SecretSpec]]
"""A policy file read: its policies and teams (its `secrets:` left empty) and its secrets."""

_READ: dict[Path, tuple[bytes, _Read]] = {}
"""Each policy file read fast, by a digest of its bytes: a reload (SIGHUP) parses and validates
again only the files that changed (the checks across files run every time). A digest, not the
modification time, whose granularity lets a same-size rewrite within milliseconds look unchanged."""


def _read_fast(path: Path, lines: yamllines.Lines) -> _Read:
    try:
        raw = yamlsource.read_bytes(path)
        text = raw.decode("utf-8")
    except (InputError, UnicodeDecodeError):
        raise yamlfast.Unsure("unreadable") from None
    digest = hashlib.blake2b(raw, digest_size=16).digest()
    known = _READ.get(path)
    if known is not None and known[0] == digest:
        return known[1]
    size = len(raw)
    del raw
    doc, items = yamlslices.load(text, size, "secrets", at_least=yamllines.BIG)
    problems: list[str] = []
    try:
        read = PolicyFile.model_validate(doc)
    except ValidationError as exc:
        problems += yamlproblems.problems_from(exc, yamllines.View(lines, doc), path, model=PolicyFile)
        read = PolicyFile()
    # one secret at a time, each raw entry dropped once read: the specs reuse the memory the
    # parse held instead of landing among its leftovers, which pinned ~100 MB at 100k secrets
    specs: list[SecretSpec] = []
    for index, item in enumerate(items):
        try:
            specs.append(entries.read(item))
        except ValidationError as exc:
            problems += yamlproblems.problems_from(
                exc, yamllines.View(lines, item, ("secrets", index)), path, model=SecretEntry
            )
    if problems:
        raise InputError(problems)
    _READ[path] = (digest, (read, specs))
    return read, specs


def _load_files(files: list[Path], settings: Settings, *, fast: bool) -> PolicySet:
    problems: list[str] = []
    parsed: list[tuple[Path, Any, PolicyFile, list[SecretSpec]]] = []
    found_lines: list[yamllines.Lines] = []
    if fast:
        for gone in set(_READ) - set(files):
            del _READ[gone]
    for path in files:
        try:
            if fast:
                # no lines yet: each problem's line is a placeholder, found afterwards (yamllines)
                found_lines.append(yamllines.Lines(path))
                view = yamllines.View(found_lines[-1], None)
                parsed.append((path, view, *_read_fast(path, found_lines[-1])))
            else:
                doc = yamlsource.load(path)
                pf = yamlproblems.validate(PolicyFile, doc, path)
                parsed.append((path, doc, pf, [entry.spec() for entry in pf.secrets]))
        except InputError as exc:
            problems.extend(exc.problems)

    result = PolicySet(policies=settings.built_in_policies())
    policy_team: dict[str, str | None] = dict.fromkeys(result.policies)
    defined_at: dict[str, str] = {}
    teams: dict[Path, str | None] = {}
    for path, doc, pf, _ in parsed:
        team, problem = checks.file_team(path, settings)
        if problem is not None:
            problems.append(problem)
            continue
        teams[path] = team
        problems.extend(checks.built_in_redefined(path, doc, list(pf.policies)))
        for name, policy in pf.policies.items():
            line = yamlsource.line_of(doc, ("policies", name))
            if name in defined_at:
                problems.append(f"{path}:{line}: policy {name!r} already defined at {defined_at[name]}")
            defined_at[name] = f"{path}:{line}"
            if name not in BUILT_IN:
                result.policies[name] = policy
                policy_team[name] = team
        groups = result.teams if team is None else result.team_groups.setdefault(team, {})
        for group, members in pf.teams.items():
            groups.setdefault(group, []).extend(members)
    # where each secret was defined, written out only for a problem (a fleet has 100,000 of them)
    seen: dict[str, tuple[Path, Any, int]] = {}
    places = checks.Places()
    cleared: set[tuple[Any, ...]] = set()

    def at(path: Path, doc: Any, index: int, *keys: str) -> str:
        return f"{path}:{yamlsource.line_of(doc, ('secrets', index, *keys))}"

    for path, doc, _, specs in parsed:
        if path not in teams:
            continue
        team = teams[path]
        groups = result.teams if team is None else result.team_groups.get(team, {})
        for index, spec in enumerate(specs):
            if spec.name in seen:
                problems.append(
                    f"{at(path, doc, index)}: secret {spec.name!r} already defined at {at(*seen[spec.name])}"
                )
            seen[spec.name] = (path, doc, index)
            problems.extend(places.add(spec, settings, functools.partial(at, path, doc, index, "store")))
            problems.extend(
                checks.check_secret(
                    spec,
                    index,
                    doc,
                    path,
                    settings=settings,
                    team=team,
                    policy_team=policy_team,
                    groups=groups,
                    cleared=cleared,
                )
            )
            result.secrets[spec.name] = spec
            if team is not None:
                result.owners[spec.name] = team
    if problems:
        raise _FastProblems(problems, found_lines) if fast else InputError(problems)
    return result
