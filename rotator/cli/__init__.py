"""The `rotator` command: `main.py` the group and its options; the commands by what they are about:
`rotations.py` (one secret or rotation), `fleet.py` (many at once), `checks.py` (validate, check),
`service.py` (the daemon, health, the simulators), `state.py` (`db`, `audit`); `common.py` and
`render.py` what they share; `exit.py` the exit codes. Tables come from `rotator.operations.views` and
`rotator.cli.progress`."""

from rotator.cli.main import main

__all__ = ["main"]
