"""Commands a provider type adds to `rotator` (Boltly's `login`), declared without click.

An action is registered by its command name in the `rotator.actions` entry point group, in a module
light enough to load for `rotator --help`: its `run` imports the adapter only when it runs. The CLI
turns each into `rotator <name> INSTANCE` (cli/actions.py): it loads rotator.yaml, refuses an
instance of another type, reads what `run` asks for hidden (a prompt at a terminal, else one line of
stdin; never argv or the environment) and prints what `run` returns. A name rotator's own commands
use is never replaced by an action.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING, Any

from rotator.errors import InputError

if TYPE_CHECKING:
    from pydantic import SecretStr

    from rotator.plugin.registry import Context

ACTIONS = "rotator.actions"

Ask = Callable[[str], "SecretStr"]
"""Reads one secret for the prompt given (`password for ops@example.com`)."""


@dataclass(frozen=True)
class Action:
    name: str
    """The command: `rotator <name> INSTANCE`."""
    provider: str
    """The provider type whose instances it acts on."""
    help: str
    """What `rotator <name> --help` says; its first sentence is the line in `rotator --help`."""
    run: Callable[[Any, Context, Ask], str]
    """(the instance's settings, its Context, ask) → what to say once done; a RotatorError says why
    it could not (the command exits 1)."""


_NAME = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*")
"""A command's name: lowercase letters and digits in words joined by dashes (no look-alikes of
rotator's commands, nothing a shell's completion would split)."""
OWN = "rotator"


@functools.cache
def _points() -> dict[str, list[EntryPoint]]:
    found: dict[str, list[EntryPoint]] = {}
    for point in entry_points(group=ACTIONS):
        found.setdefault(point.name, []).append(point)
    return found


def _package(point: EntryPoint) -> str:
    return str(getattr(point.dist, "name", None) or "?")


def names() -> list[str]:
    """The actions installed, by name, without loading any (shell completion, `rotator --help`)."""
    return sorted(name for name in _points() if _NAME.fullmatch(name))


def action(name: str) -> Action | None:
    """The action called `name`, loaded; None when none is installed by that name. InputError
    names what is wrong with an installed one: a name that is no command's, two packages giving
    one name (rotator's own action is never replaced: another package's of that name is ignored),
    or an entry point that cannot be loaded."""
    points = _points().get(name)
    if not points or not _NAME.fullmatch(name):
        return None
    points = [p for p in points if _package(p) == OWN] or points
    if len({(_package(p), p.value) for p in points}) > 1:
        given = ", ".join(sorted(f"{_package(p)} ({p.value})" for p in points))
        raise InputError([f"the command {name!r} is given by several packages: {given}; uninstall all but one"])
    point = points[0]
    try:
        loaded = point.load()
    except Exception as exc:  # another package's import error, whatever it is
        raise InputError(
            [f"entry point {ACTIONS}:{name} ({point.value}) cannot be loaded: {type(exc).__name__}: {exc}"]
        ) from None
    if not isinstance(loaded, Action) or loaded.name != name:
        raise InputError([f"entry point {ACTIONS}:{name} ({point.value}) is not an Action named {name!r}"])
    return loaded
