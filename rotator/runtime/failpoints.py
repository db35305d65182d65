"""Named crash points for crash-safety tests: `ROTATOR_FAILPOINTS=after:staged,after-create`.

When a listed point is reached, the process kills itself with SIGKILL — no cleanup, no
flushing — exactly as a power cut or the OOM killer would. Unset in production: a no-op.
"""

from __future__ import annotations

import os
import signal


def hit(name: str) -> None:
    wanted = os.environ.get("ROTATOR_FAILPOINTS")
    if wanted and name in wanted.split(","):
        os.kill(os.getpid(), signal.SIGKILL)
