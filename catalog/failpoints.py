"""Named points where a process can be made to die, to test crash safety.

``STRATA_FAILPOINTS=rollback.verifying,rollback.applying`` makes the process kill
itself with SIGKILL — no cleanup, no exception handler, exactly like a worker lost
to the kernel's OOM killer or a pulled plug — when it reaches one of those points.
Unset (always, outside tests), `hit` is one dictionary lookup.
"""

from __future__ import annotations

import os
import signal


def hit(name: str) -> None:
    """Die here if the environment names this point."""
    armed = os.environ.get("STRATA_FAILPOINTS")
    if armed and name in armed.split(","):
        os.kill(os.getpid(), signal.SIGKILL)
