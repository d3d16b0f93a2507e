"""The tests' PostgreSQL, checked for real: the private cluster a machine without a server
gets (started, used, stopped, gone even when its owner is killed), the fresh database each
test gets, the fixture over both backends, and a failure — not a skip — when there is no
server."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psycopg2
import pytest

from tests.support import postgres
from tests.support.net import free_port
from tests.support.pgcluster import URL_VARIABLE, private_cluster
from tests.support.postgres import (
    DATABASE_PREFIX,
    SKIP_VARIABLE,
    fresh_database,
    refusal,
    running_postgres,
)
from tests.support.processes import descendants
from tests.support.sql import sql

ROOT = Path(__file__).resolve().parent.parent


def query(url: str, statement: str, *args) -> list[tuple]:
    """Return the rows of one statement run at ``url`` (autocommit)."""
    connection = psycopg2.connect(url, connect_timeout=10)
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute(statement, args)
            return cursor.fetchall() if cursor.description else []
    finally:
        connection.close()


def processes_in(folder: str) -> list:
    """Return the live descendants of the test run whose command line names ``folder``."""
    return [p for p in descendants() if p.alive and folder in p.cmdline]


def wait_refused(url: str, timeout_s: float = 30) -> str | None:
    """Return why ``url`` refuses connections once it does, or None if it still answers
    after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while (reason := refusal(url)) is None and time.monotonic() < deadline:
        time.sleep(0.1)
    return reason


@pytest.mark.slow
def test_private_cluster_serves_on_its_port_and_leaves_nothing():
    port = free_port()
    with private_cluster(port=port) as url:
        assert url == f"postgresql://postgres@127.0.0.1:{port}/postgres"
        [(data, fsync)] = query(url, "SELECT current_setting('data_directory'), "
                                     "current_setting('fsync')")
        assert fsync == "off"  # a throwaway cluster
        query(url, "CREATE TABLE t (x text)")
        query(url, "INSERT INTO t VALUES (%s)", "需求确认函")
        assert query(url, "SELECT x FROM t") == [("需求确认函",)]
        assert processes_in(data)
    assert "refused" in (refusal(url) or "")
    assert not Path(data).parent.exists()
    assert processes_in(data) == []


@pytest.mark.slow
def test_the_command_gets_the_url_and_its_exit_status_is_kept():
    port = free_port()
    script = ("import os, sys, psycopg2\n"
              f"url = os.environ['{URL_VARIABLE}']\n"
              "psycopg2.connect(url).close()\n"
              "print('used', url)\n"
              "sys.exit(3)\n")
    done = subprocess.run([sys.executable, "-m", "tests.support.pgcluster", "--port", str(port),
                           "--", sys.executable, "-c", script],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    assert done.returncode == 3, done.stderr
    assert done.stdout.splitlines() == [f"PostgreSQL: {url}", f"used {url}"]
    assert refusal(url) is not None


@pytest.mark.slow
def test_the_server_dies_with_its_owner_killed():
    port = free_port()
    owner = subprocess.Popen([sys.executable, "-m", "tests.support.pgcluster", "--port",
                              str(port)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        url = owner.stdout.readline().split()[-1]
        [(data,)] = query(url, "SELECT current_setting('data_directory')")
        assert processes_in(data)
        owner.kill()  # SIGKILL: the owner cannot stop the server itself
        owner.wait(timeout=10)
        assert wait_refused(url) is not None
        deadline = time.monotonic() + 30
        while processes_in(data) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert processes_in(data) == []
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait()
        owner.stdout.close()
    # SIGKILL leaves the folder; the next private cluster removes it once it is stale.
    shutil.rmtree(Path(data).parent)


@pytest.mark.slow
def test_without_a_server_on_5432_the_run_starts_its_own(monkeypatch):
    monkeypatch.delenv(URL_VARIABLE, raising=False)
    nobody = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"
    monkeypatch.setattr(postgres, "MACHINE_URL", nobody)
    with running_postgres() as url:
        assert url != nobody
        with fresh_database(url) as database:
            assert query(database, "SELECT 1") == [(1,)]
    assert refusal(url) is not None


@pytest.mark.slow
def test_each_test_gets_a_new_empty_database(postgres_database, postgres_server):
    [(name, tables)] = query(postgres_database, "SELECT current_database(), count(*) FROM "
                                                "information_schema.tables "
                                                "WHERE table_schema = 'public'")
    assert name.startswith(DATABASE_PREFIX)
    assert tables == 0
    assert postgres_database.rsplit("/", 1)[0] == postgres_server.rsplit("/", 1)[0]


@pytest.mark.slow
def test_the_database_is_dropped_with_connections_left_open(postgres_server):
    with fresh_database(postgres_server) as url:
        name = url.rsplit("/", 1)[1]
        forgotten = psycopg2.connect(url)  # a test that never closes its connection
        with forgotten.cursor() as cursor:
            cursor.execute("CREATE TABLE t (x int)")
        forgotten.commit()
    assert query(postgres_server, "SELECT count(*) FROM pg_database WHERE datname = %s",
                 name) == [(0,)]
    with pytest.raises(psycopg2.OperationalError):
        with forgotten.cursor() as cursor:
            cursor.execute("SELECT 1")
    forgotten.close()


def test_the_backends_fixture_gives_a_working_database(database_target, tmp_path):
    on_sqlite = "://" not in database_target
    if on_sqlite:
        assert database_target == str(tmp_path / "countersign.db")
    else:
        assert database_target.startswith("postgresql://")
    sql(database_target, "CREATE TABLE t (x TEXT)")
    sql(database_target, "INSERT INTO t VALUES (:x)", {"x": "会议纪要"})
    assert sql(database_target, "SELECT x FROM t") == [("会议纪要",)]
    assert (tmp_path / "countersign.db").exists() == on_sqlite


def run_one_postgres_test(**environment: str) -> subprocess.CompletedProcess:
    """Run the test above that needs a PostgreSQL database in a pytest of its own, with
    ``environment``; return how it went."""
    env = {key: value for key, value in os.environ.items()
           if key not in (URL_VARIABLE, SKIP_VARIABLE)} | environment
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rs",
         "tests/test_postgres_support.py::test_each_test_gets_a_new_empty_database"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_no_postgres_fails_the_test_naming_why():
    closed = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"
    done = run_one_postgres_test(**{URL_VARIABLE: closed})
    assert done.returncode == pytest.ExitCode.TESTS_FAILED, done.stdout
    assert "1 error" in done.stdout and "skipped" not in done.stdout
    assert f"PostgreSQL is needed and unavailable: {URL_VARIABLE}={closed}" in done.stdout
    assert "Connection refused" in done.stdout


def test_a_developer_may_skip_postgres_explicitly():
    closed = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"
    done = run_one_postgres_test(**{URL_VARIABLE: closed, SKIP_VARIABLE: "1"})
    assert done.returncode == pytest.ExitCode.OK, done.stdout
    assert "1 skipped" in done.stdout and f"{SKIP_VARIABLE} is set" in done.stdout

