"""Shared fixtures; the helpers behind them are in ``tests/support``. The end-to-end
fixtures start real LibreOffice processes, SMTP servers and data folders, and stop them."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.config import Settings
from pipeline.render.libreoffice import ConverterPool, PoolSpec
from tests.support import processes
from tests.support.data import initialised
from tests.support.mail import Inbox, smtp_server
from tests.support.postgres import BACKENDS, backend_database, fresh_database, running_postgres
from tests.support.s3 import moto_server

# Every temporary folder of this run — LibreOffice profiles included, also those of the
# services and commands the tests start — lives in one folder, so that the end of the run
# can check that no pool folder was left behind (pools remove theirs when they close, and
# each worker's bridge when the pool's owner dies).
RUN_TMP = Path(tempfile.mkdtemp(prefix="countersign-tests-"))
os.environ["TMPDIR"] = str(RUN_TMP)
tempfile.tempdir = None


# Fixtures that start what the fast tier never needs.
SLOW_FIXTURES = {"pool": "the LibreOffice pool", "postgres_server": "PostgreSQL",
                 "postgres_database": "PostgreSQL"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Refuse to run a test that uses the LibreOffice pool or PostgreSQL without the
    ``slow`` marker: ``pytest -m "not slow"`` must never start LibreOffice or need a
    database server."""
    for fixture, what in SLOW_FIXTURES.items():
        unmarked = [item.nodeid for item in items
                    if fixture in getattr(item, "fixturenames", ())
                    and item.get_closest_marker("slow") is None]
        if unmarked:
            raise pytest.UsageError(f"tests using {what} must be marked slow: "
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


@pytest.fixture(params=BACKENDS)
def database_target(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The database a record-layer test runs on, once per backend: an SQLite file, or a
    fresh PostgreSQL database (its URL; slow)."""
    return backend_database(request, tmp_path)


@pytest.fixture(params=BACKENDS)
def backend_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """An initialised data folder whose records live in SQLite, then in PostgreSQL: a module
    runs its tests on both by defining ``settings`` as this fixture."""
    if request.param == "sqlite":
        return initialised(tmp_path / "data")
    return initialised(tmp_path / "data", database_url=backend_database(request, tmp_path))


@pytest.fixture(scope="session")
def s3_endpoint():
    """A real S3 API (moto_server) on loopback for the whole run: its endpoint URL. Each test
    uses a bucket of its own."""
    with moto_server() as endpoint:
        yield endpoint


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """PostgreSQL for the whole run: the URL of its maintenance database. The machine's on
    127.0.0.1:5432, else a private cluster started and stopped here; a test that needs it
    fails when there is none (``tests/support/postgres.py``)."""
    with running_postgres() as url:
        yield url


@pytest.fixture
def postgres_database(postgres_server: str) -> Iterator[str]:
    """A new empty PostgreSQL database for this test: its URL (``postgresql://…``); dropped
    afterwards, with any connection left open to it ended."""
    with fresh_database(postgres_server) as url:
        yield url


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
