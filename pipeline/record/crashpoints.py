"""Named points where a test can make the process die, to prove every step can be retried.

``COUNTERSIGN_CRASH_AT=sign:after-store`` kills the process with SIGKILL when it reaches that
point: no cleanup, no flush, exactly like a power cut. Unset in normal use (one dict lookup).
"""

from __future__ import annotations

import os
import signal

from pipeline.config import crash_point_name


def crash_point(name: str) -> None:
    """Die here if ``COUNTERSIGN_CRASH_AT`` names this point."""
    if crash_point_name() == name:
        os.kill(os.getpid(), signal.SIGKILL)
