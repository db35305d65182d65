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


@functools.cache
def _points() -> dict[str, EntryPoint]:
    return {point.name: point for point in sorted(entry_points(group=ACTIONS), key=lambda p: p.name)}


def names() -> list[str]:
    """The actions installed, by name, without loading any (shell completion, `rotator --help`)."""
    return list(_points())


def action(name: str) -> Action | None:
    """The action called `name`, loaded; None when none is installed by that name."""
    point = _points().get(name)
    if point is None:
        return None
    loaded = point.load()
    if not isinstance(loaded, Action) or loaded.name != name:
        raise InputError([f"entry point {ACTIONS}:{name} ({point.value}) is not an Action named {name!r}"])
    return loaded
