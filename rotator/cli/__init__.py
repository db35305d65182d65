"""The `rotator` command: `main.py` holds the commands, `state.py` the state database's,
`exit.py` the exit codes; what they print is drawn by `rotator.views` and `rotator.progress`."""

from rotator.cli.main import main

__all__ = ["main"]
