"""The test run's own processes: every descendant of the pytest process, read from /proc.

LibreOffice workers run in sessions of their own, and a ``countersign`` command killed at a
crash point leaves its workers behind. The pytest process declares itself a child
subreaper, so such orphans are re-parented to it rather than to init and stay
recognisably ours; it also collects the exit status of the dead ones. Nothing here looks
processes up by name: other test runs on the same machine start the same programs.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import time
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
    sid: int
    state: str
    cmdline: str

    @property
    def alive(self) -> bool:
        return self.state not in ("Z", "X")

    def environ(self) -> str:
        """Return the process's environment, one ``NAME=value`` a line ("" if gone)."""
        try:
            return Path(f"/proc/{self.pid}/environ").read_bytes().replace(
                b"\0", b"\n").decode(errors="replace")
        except OSError:
            return ""


def _read(pid: int) -> Proc | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:  # gone in the meantime
        return None
    # The command name is in parentheses and may hold spaces: split after the last one.
    state, ppid, pgid, sid = stat[stat.rindex(")") + 2:].split()[:4]
    return Proc(pid, int(ppid), int(pgid), int(sid), state,
                cmdline.replace(b"\0", b" ").decode(errors="replace").strip())


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
    return [p for p in descendants() if p.alive
            and not any(name in p.cmdline for name in EXPECTED)
            and (marker in p.cmdline or marker in p.environ())]


def reap_adopted() -> None:
    """Collect the exit status of dead children in sessions other than the test run's:
    LibreOffice processes whose parent died before them and that were re-parented here.
    (Children in the run's own session are the tests' commands: their Popen waits.)"""
    own_session = os.getsid(0)
    for _ in range(20):  # reaping one may re-parent its dead children here
        dead = [p for p in descendants() if p.ppid == os.getpid() and not p.alive
                and p.sid != own_session]
        if not dead:
            return
        for proc in dead:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(proc.pid, os.WNOHANG)


def stop(procs: list[Proc], wait_s: float = 10) -> None:
    """Kill ``procs`` with their process groups (never this process's own group) and reap
    them as they become this process's children, until none is left or ``wait_s`` passed."""
    own_group = os.getpgid(0)
    groups = {p.pgid for p in procs} - {own_group}
    pids = {p.pid for p in procs}
    for group in groups:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + wait_s
    while True:
        remaining = [p for p in descendants() if p.pgid in groups or p.pid in pids]
        if not remaining or time.monotonic() > deadline:
            return
        for proc in remaining:
            if proc.ppid == os.getpid() and not proc.alive:
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(proc.pid, os.WNOHANG)
        time.sleep(0.05)
