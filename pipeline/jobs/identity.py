"""Who holds a job: each consumer's identity, and whether a holder is known to be gone.

An owner id names the machine (its boot id), the process-id namespace, the process and its
start time, plus a random part for each consumer in the process. A consumer on the same
machine and namespace can then tell that a holder's process has ended — a server killed
with SIGKILL and started again takes its jobs back at once instead of waiting out their
leases. A holder elsewhere is never judged: only its lease says it is gone.
"""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path


@lru_cache(maxsize=1)
def _machine() -> str:
    """This boot of this machine and the process-id namespace, as one short string."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        namespace = os.readlink("/proc/self/ns/pid").strip("pid:[]")
    except OSError:
        return ""
    return f"{boot}.{namespace}"


def _started(pid: int) -> str | None:
    """The start time of process ``pid`` (clock ticks since boot), or None if there is
    no live process with that id."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] in ("Z", "X") else fields[19]


@dataclass(frozen=True)
class Owner:
    """A consumer's identity as written in the job records."""

    id: str

    @classmethod
    def this_process(cls) -> Owner:
        """Return a new identity for a consumer of this process."""
        host = socket.gethostname().replace("/", "_")[:40]
        pid = os.getpid()
        return cls(f"{host}/{_machine()}/{pid}/{_started(pid)}/{secrets.token_hex(3)}")


def holder_gone(owner_id: str | None) -> bool:
    """Return True when ``owner_id`` names a process of this machine and namespace that no
    longer runs; False when it runs, or when this machine cannot tell."""
    if not owner_id:
        return False
    parts = owner_id.split("/")
    if len(parts) != 5 or not _machine() or parts[1] != _machine():
        return False
    try:
        pid = int(parts[2])
    except ValueError:
        return False
    return _started(pid) != parts[3]
