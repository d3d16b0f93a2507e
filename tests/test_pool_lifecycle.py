"""LibreOffice never outlives the process that owns the pool: not on a normal exit, not on an
error, not on SIGTERM, not on SIGKILL. Each test starts a pool in a child process, ends that
process, and checks — by process id and process group, never by name, since other
LibreOffice processes may run on the machine — that its offices and their folders are gone."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
OWNER = """
import json, sys, time
from pipeline.render.libreoffice import ConverterPool, PoolSpec

def report(pool):
    workers = pool.workers()
    print(json.dumps({"offices": [w.pid for w in workers],
                      "bridges": [w.bridge.pid for w in workers],
                      "root": str(workers[0].home.parent)}), flush=True)

mode = sys.argv[1]
if mode == "error":
    with ConverterPool(PoolSpec(size=2)) as pool:
        report(pool)
        sys.stdin.readline()
        raise RuntimeError("the owner fails")
pool = ConverterPool(PoolSpec(size=2)).start()
report(pool)
sys.stdin.readline()
if mode == "exit":
    sys.exit(3)
time.sleep(600)
"""


def group_members(pgid: int) -> list[int]:
    """Return the live (not zombie) processes of process group ``pgid``."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] not in ("Z", "X") and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


def running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def start_owner(mode: str) -> tuple[subprocess.Popen, dict]:
    owner = subprocess.Popen([sys.executable, "-c", OWNER, mode], cwd=ROOT,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert owner.stdout is not None
    line = owner.stdout.readline()
    assert line, "the owner did not start its pool"
    started = json.loads(line)
    for office in started["offices"]:
        # oosplash and soffice.bin, in the group the bridge made for them
        assert len(group_members(office)) >= 2, group_members(office)
    assert Path(started["root"], "worker-0", "profile").is_dir()
    return owner, started


def assert_all_gone(started: dict, within_s: float = 20.0) -> None:
    deadline = time.monotonic() + within_s
    while True:
        left = {office: group_members(office) for office in started["offices"]}
        left = {office: members for office, members in left.items() if members}
        bridges = [pid for pid in started["bridges"] if running(pid)]
        folder = Path(started["root"]).exists()
        if not left and not bridges and not folder:
            return
        if time.monotonic() > deadline:
            for members in left.values():  # leave the machine clean before failing
                for pid in members:
                    os.kill(pid, signal.SIGKILL)
            pytest.fail(f"left behind: offices {left}, bridges {bridges}, folder {folder}")
        time.sleep(0.1)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_killed_owner_takes_its_offices_along(sig):
    owner, started = start_owner("sleep")
    owner.send_signal(sig)
    owner.wait(30)
    assert_all_gone(started)


@pytest.mark.parametrize("mode, code", [("error", 1), ("exit", 3)])
def test_owner_ending_on_an_error_takes_its_offices_along(mode, code):
    owner, started = start_owner(mode)
    owner.communicate("\n", timeout=60)
    assert owner.returncode == code
    assert_all_gone(started)
