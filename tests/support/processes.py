"""The test run's own processes: every descendant of the pytest process, read from /proc.

LibreOffice workers run in sessions of their own and a ``countersign`` command killed at a
crash point leaves its workers behind; the pytest process declares itself a child
subreaper so that such orphans are re-parented to it rather than to init, and stay
recognisably ours. Nothing here looks processes up by name: other test runs on the same
machine start the same programs.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
from dataclasses import dataclass
from pathlib import Path

PR_SET_CHILD_SUBREAPER = 36
# Python's multiprocessing helper lives as long as the pytest process and ends with it.
EXPECTED = ("multiprocessing.resource_tracker", "multiprocessing.forkserver")


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    pgid: int
    state: str
    cmdline: str
    environ: str

    @property
    def alive(self) -> bool:
        return self.state not in ("Z", "X")


def _read(pid: int) -> Proc | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:  # gone in the meantime
        return None
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:  # another user's process
        environ = b""
    # The command name is in parentheses and may hold spaces: split after the last one.
    fields = stat[stat.rindex(")") + 2:].split()
    return Proc(pid, int(fields[1]), int(fields[2]), fields[0],
                cmdline.replace(b"\0", b" ").decode(errors="replace").strip(),
                environ.replace(b"\0", b"\n").decode(errors="replace"))


def adopt_orphans() -> bool:
    """Make orphaned descendants children of this process instead of init; return whether
    the kernel agreed."""
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0


def descendants(root: int | None = None) -> list[Proc]:
    """Return every live or zombie descendant of ``root`` (default: this process)."""
    root = os.getpid() if root is None else root
    children: dict[int, list[Proc]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (proc := _read(int(entry))):
            children.setdefault(proc.ppid, []).append(proc)
    found, todo = [], [root]
    while todo:
        for proc in children.get(todo.pop(), []):
            found.append(proc)
            todo.append(proc.pid)
    return found


def leftovers(marker: str = "") -> list[Proc]:
    """Return this process's live descendants whose command line or environment holds
    ``marker``, other than the helpers expected to live as long as the test run."""
    return [p for p in descendants() if p.alive and (marker in p.cmdline
                                                     or marker in p.environ)
            and not any(name in p.cmdline for name in EXPECTED)]


def reap_zombies() -> None:
    """Collect the exit status of this process's dead children that nobody waits for
    (adopted orphans), so that they do not linger as zombies."""
    for proc in descendants():
        if proc.ppid == os.getpid() and not proc.alive:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(proc.pid, os.WNOHANG)


def stop(procs: list[Proc]) -> None:
    """Kill ``procs`` with their process groups (never this process's own group) and reap
    those that are now this process's children."""
    own_group = os.getpgid(0)
    for proc in procs:
        with contextlib.suppress(ProcessLookupError):
            if proc.pgid != own_group:
                os.killpg(proc.pgid, signal.SIGKILL)
            else:
                os.kill(proc.pid, signal.SIGKILL)
    for proc in descendants():
        if proc.ppid == os.getpid() and any(proc.pgid == p.pgid or proc.pid == p.pid
                                            for p in procs):
            with contextlib.suppress(ChildProcessError):
                os.waitpid(proc.pid, 0)
