"""Helper processes end with the process that started them.

Python's process pools (the bulk renderer, the service's signer processes) hand each child
both ends of their task queue, so a child whose parent is killed with SIGKILL never sees the
queue close and waits for work for ever. ``end_with_parent`` runs in the child (as or in its
pool initializer) and ends it once its parent is gone. LibreOffice has its own watchdog, the
bridge (``uno_bridge.py``).
"""

from __future__ import annotations

import os
import threading
import time


def end_with_parent(poll_s: float = 1.0) -> None:
    """Start a daemon thread that ends this process as soon as its parent is gone (it was
    re-parented); return at once."""
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(poll_s)
            if os.getppid() != parent:
                os._exit(1)  # nothing of this child's is worth finishing without its owner

    threading.Thread(target=watch, daemon=True, name="end-with-parent").start()
