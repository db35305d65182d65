"""The exit codes of every command, in one place (docs/cli.md lists them for scripts)."""

from __future__ import annotations

import enum


class Exit(enum.IntEnum):
    OK = 0
    FAILED = 1
    """The command ran and something failed (or `reconcile` found something to fix)."""
    INPUT = 2
    """Bad input: configuration, policy files, arguments; nothing was changed."""
    IN_PROGRESS = 3
    """Rotations are in flight and will go on (a daemon, a later run)."""
    OPERATOR = 4
    """Waiting for the operator: a key to make (`rotator supply`) or to revoke."""
    HELD = 5
    """Held for a person: `rotator status` says why."""
    LOCKED = 6
    """Another process holds the secret's lease right now; try again."""
    INTERRUPTED = 130
    """Ctrl-C before anything was started (the shell's 128 + SIGINT)."""
    BROKEN_PIPE = 141
    """Whoever read the output stopped reading (`| head`): the shell's 128 + SIGPIPE."""
