"""Helper processes end with the process that started them.

Python's process pools (the service's signer processes) hand each child
both ends of their task queue, so a child whose parent is killed with SIGKILL never sees the
queue close and waits for work for ever. ``end_with_parent`` runs in the child (as or in its
pool initializer) and ends it once its parent is gone. LibreOffice has its own watchdog, the
bridge (``uno_bridge.py``).
"""

from __future__ import annotations

import os
import threading
import time


def end_with_parent(parent: int | None = None, poll_s: float = 1.0) -> None:
    """Start a daemon thread that ends this process as soon as ``parent`` is no longer its
    parent (it was re-parented); return at once.

    The parent passes its own process id (``parent``): a child is told it, rather than
    reading it when it starts, because a parent killed while the child was still starting
    would otherwise leave the child watching its new parent, for ever.
    """
    parent = os.getppid() if parent is None else parent

    def watch() -> None:
        while True:
            if os.getppid() != parent:
                os._exit(1)  # nothing of this child's is worth finishing without its owner
            time.sleep(poll_s)

    threading.Thread(target=watch, daemon=True, name="end-with-parent").start()
