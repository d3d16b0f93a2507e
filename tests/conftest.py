"""Shared fixtures. The end-to-end fixtures start real LibreOffice processes."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from pipeline.config import Settings
from pipeline.render.libreoffice import ConverterPool, PoolSpec

# Every temporary folder of this run — LibreOffice profiles included, also those of the
# servers and commands the tests start — lives in one folder: at the end of the run no office
# may still run from it and no pool folder may be left in it.
RUN_TMP = Path(tempfile.mkdtemp(prefix="countersign-tests-"))
os.environ["TMPDIR"] = str(RUN_TMP)
tempfile.tempdir = None

EXAMPLES = Path(__file__).parent / "examples"
TEMPLATE_KEYS = ("requirement_confirmation", "progress_sync", "issue_tracking",
                 "meeting_minutes")


def free_port() -> int:
    """Return a loopback TCP port nobody listens on (right now)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def example(key: str) -> dict:
    """Return a fresh copy of the example form of template ``key``."""
    return json.loads((EXAMPLES / f"{key}.json").read_text(encoding="utf-8"))


def pdf_text(pdf: bytes | Path, raw: bool = False) -> str:
    """Return the text of a PDF as poppler's pdftotext extracts it.

    ``raw`` keeps content-stream order: a long cell's text is not interleaved with the
    cells beside it, as it is in reading-order layout.
    """
    args = ["pdftotext", "-enc", "UTF-8", *(["-raw"] if raw else [])]
    if isinstance(pdf, bytes):
        result = subprocess.run([*args, "-", "-"], input=pdf, capture_output=True, check=True)
    else:
        result = subprocess.run([*args, str(pdf), "-"], capture_output=True, check=True)
    return result.stdout.decode("utf-8")


def squash(text: str) -> str:
    """Return ``text`` without whitespace and page footers (extraction re-wraps long lines,
    and a value that spans pages has the footer between its parts)."""
    return re.sub(r"第\d+页/共\d+页", "", "".join(text.split()))


@pytest.fixture(scope="session")
def pool():
    """A warm two-process LibreOffice pool shared by the end-to-end tests."""
    with ConverterPool(PoolSpec(size=2, timeout_s=60)) as shared:
        yield shared


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data")


def _processes_using(folder: Path) -> list[int]:
    """Return the processes whose command line names ``folder`` (offices, their bridges)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if str(folder) in (entry / "cmdline").read_bytes().decode(errors="replace"):
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
                if state not in ("Z", "X"):
                    found.append(int(entry.name))
        except (OSError, IndexError):
            continue
    return found


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run if it left a LibreOffice process or a pool folder behind."""
    deadline = time.monotonic() + 20  # bridges of servers just stopped are still cleaning up
    while True:
        running = _processes_using(RUN_TMP)
        pools = sorted(path.name for path in RUN_TMP.glob("countersign-lo-*"))
        if (not running and not pools) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    for pid in running:  # ours: this run started them; end them before reporting
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    shutil.rmtree(RUN_TMP, ignore_errors=True)
    if running or pools:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        print(f"\nLEFT BEHIND by this run: processes {running}, pool folders {pools}")
