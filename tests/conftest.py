"""Shared fixtures; the helpers behind them are in ``tests/support``. The end-to-end
fixtures start real LibreOffice processes, SMTP servers and data folders, and stop them."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from pipeline.config import Settings
from pipeline.render.libreoffice import ConverterPool, PoolSpec
from tests.support import processes
from tests.support.data import initialised
from tests.support.mail import Inbox, smtp_server
from tests.support.postgres import fresh_database
from tests.support.s3 import moto_server

# Every temporary folder of this run — LibreOffice profiles included, also those of the
# services and commands the tests start — lives in one folder, so that the end of the run
# can check that no pool folder was left behind (pools remove theirs when they close, and
# each worker's bridge when the pool's owner dies).
RUN_TMP = Path(tempfile.mkdtemp(prefix="countersign-tests-"))
os.environ["TMPDIR"] = str(RUN_TMP)
tempfile.tempdir = None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Refuse to run a test that uses the LibreOffice pool without the ``slow`` marker:
    ``pytest -m "not slow"`` must never start LibreOffice."""
    unmarked = [item.nodeid for item in items
                if "pool" in getattr(item, "fixturenames", ())
                and item.get_closest_marker("slow") is None]
    if unmarked:
        raise pytest.UsageError("tests using the LibreOffice pool must be marked slow: "
                                + ", ".join(unmarked))


@pytest.fixture(scope="session", autouse=True)
def no_process_outlives_the_run():
    """Fail the run if any process the tests started (LibreOffice, a service, a command)
    is still alive at the end, after stopping it. Orphans of killed commands are
    re-parented to the pytest process, so they are found too."""
    processes.adopt_orphans()
    yield
    left = processes.leftovers()
    processes.reap_adopted()
    if left:
        processes.stop(left)
        listing = "\n".join(f"  {p.pid} (parent {p.ppid}): {p.cmdline[:160]}" for p in left)
        pytest.fail(f"{len(left)} process(es) outlived the tests and were killed:\n{listing}",
                    pytrace=False)


@pytest.fixture(autouse=True)
def _reap_adopted_processes():
    """After each test, collect the LibreOffice processes that died after their parent
    (they were re-parented to pytest), so that none lingers as a zombie."""
    yield
    processes.reap_adopted()


@pytest.fixture(scope="session")
def pool():
    """A warm two-process LibreOffice pool shared by the end-to-end tests."""
    with ConverterPool(PoolSpec(size=2, timeout_s=60)) as shared:
        yield shared


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)])
def database_target(request, tmp_path):
    """The database a record-layer test runs on, once per backend: an SQLite file, or a
    fresh PostgreSQL database (its URL)."""
    if request.param == "sqlite":
        yield str(tmp_path / "countersign.db")
        return
    with fresh_database() as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)])
def backend_settings(request, tmp_path: Path):
    """An initialised data folder whose records live in SQLite, then in PostgreSQL: a module
    runs its tests on both by defining ``settings`` as this fixture."""
    if request.param == "sqlite":
        yield initialised(tmp_path / "data")
        return
    with fresh_database() as url:
        yield initialised(tmp_path / "data", database_url=url)


@pytest.fixture(scope="session")
def s3_endpoint():
    """A real S3 API (moto_server) on loopback for the whole run: its endpoint URL. Each test
    uses a bucket of its own."""
    with moto_server() as endpoint:
        yield endpoint


@pytest.fixture
def smtp() -> tuple[Inbox, int]:
    """An SMTP server on loopback: its inbox and port."""
    with smtp_server() as running:
        yield running


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """An initialised data folder (local CA, demo parties with passphrase ``demo``)."""
    return initialised(tmp_path / "data")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run if it left a LibreOffice pool folder, or LibreOffice's own temporary
    folder (``lu*.tmp``: an office that was killed), behind; then remove its folder."""
    deadline = time.monotonic() + 20  # bridges of services just stopped may still be at it
    while (left := sorted(p.name for pattern in ("countersign-lo-*", "lu*.tmp")
                          for p in RUN_TMP.glob(pattern))) and time.monotonic() < deadline:
        time.sleep(0.2)
    shutil.rmtree(RUN_TMP, ignore_errors=True)
    if left:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        print(f"\nLibreOffice folders left behind by this run: {left}")
