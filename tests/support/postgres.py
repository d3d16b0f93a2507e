"""PostgreSQL for the tests of the scale-out backend: one server for the run, a fresh empty
database for each test, and the parameters that run a test on both backends.

The server, in this order: the one ``COUNTERSIGN_TEST_POSTGRES_URL`` names (a URL of its
maintenance database, e.g. ``postgresql://postgres@127.0.0.1:5432/postgres``); the machine's
own on 127.0.0.1:5432 when it lets user ``postgres`` in without a password (this project's
machines run one); else a private cluster this run starts and stops (``pgcluster``).
If none can be had, the tests that need it FAIL, naming why: a skipped test would hide a
missing backend. A developer without PostgreSQL sets ``COUNTERSIGN_TEST_SKIP_POSTGRES=1`` to
skip them instead.

Each test's database is ``cs_test_<random>``, created from ``template0`` and dropped
afterwards with any connection still open to it ended.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlsplit, urlunsplit

import psycopg2
import pytest
from psycopg2 import sql

from tests.support.pgcluster import URL_VARIABLE, ClusterError, private_cluster

MACHINE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
SKIP_VARIABLE = "COUNTERSIGN_TEST_SKIP_POSTGRES"
DATABASE_PREFIX = "cs_test"

# Parameters of a fixture that runs its tests on each backend (see ``backend_database``);
# the PostgreSQL ones are slow: ``pytest -m "not slow"`` runs the SQLite ones only.
BACKENDS = (pytest.param("sqlite", id="sqlite"),
            pytest.param("postgresql", id="postgresql", marks=pytest.mark.slow))


def libpq_url(url: str) -> str:
    """Return ``url`` as libpq (psycopg2.connect) takes it: without SQLAlchemy's
    ``+driver``."""
    scheme, rest = url.split("://", 1)
    return scheme.split("+", 1)[0] + "://" + rest


def refusal(url: str) -> str | None:
    """Return why the server at ``url`` does not let us in (one line), or None if it does."""
    try:
        psycopg2.connect(libpq_url(url), connect_timeout=5).close()
    except psycopg2.Error as error:
        return " ".join(str(error).split()) or type(error).__name__
    return None


def unavailable(reason: str) -> NoReturn:
    """Fail the test that needs PostgreSQL, naming ``reason`` and the ways out (or skip it,
    when the developer asked for that)."""
    if os.environ.get(SKIP_VARIABLE):
        pytest.skip(f"PostgreSQL unavailable ({SKIP_VARIABLE} is set): {reason}")
    pytest.fail(f"PostgreSQL is needed and unavailable: {reason} — `make test` installs "
                f"Debian's postgresql and starts a private cluster; or point {URL_VARIABLE} "
                f"at a server (postgresql://user@host:port/postgres); or set "
                f"{SKIP_VARIABLE}=1 to skip these tests", pytrace=False)


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server could be had; the message says why."""


@contextlib.contextmanager
def find_postgres() -> Iterator[str]:
    """Yield the URL of a PostgreSQL server's maintenance database, as a user that may
    create databases (see the module's docstring for which server); raise
    PostgresUnavailable, naming why, when there is none."""
    if named := os.environ.get(URL_VARIABLE):
        if reason := refusal(named):
            raise PostgresUnavailable(f"{URL_VARIABLE}={named}: {reason}")
        yield libpq_url(named)
        return
    if refusal(MACHINE_URL) is None:
        yield MACHINE_URL
        return
    # Nothing lets us in on 5432: a private cluster (on 5432 itself when the port is free).
    with contextlib.ExitStack() as stack:
        try:
            url = stack.enter_context(private_cluster())
        except ClusterError as error:
            raise PostgresUnavailable("nothing lets user postgres in at 127.0.0.1:5432, and "
                                      f"{error}") from None
        yield url


@contextlib.contextmanager
def running_postgres() -> Iterator[str]:
    """Yield the URL of the run's PostgreSQL server (``find_postgres``); fail the test that
    needs it when there is none."""
    with contextlib.ExitStack() as stack:
        try:
            url = stack.enter_context(find_postgres())
        except PostgresUnavailable as error:
            unavailable(str(error))
        yield url


def with_database(server_url: str, name: str) -> str:
    """Return ``server_url`` with its database replaced by ``name``."""
    return urlunsplit(urlsplit(server_url)._replace(path=f"/{name}"))


def _admin(server_url: str):
    """Return an autocommit connection to the server (CREATE/DROP DATABASE need one)."""
    connection = psycopg2.connect(libpq_url(server_url), connect_timeout=10)
    connection.autocommit = True
    return connection


def create_database(server_url: str, prefix: str = DATABASE_PREFIX) -> str:
    """Create an empty UTF-8 database of a new random name; return its name."""
    name = f"{prefix}_{secrets.token_hex(6)}"
    connection = _admin(server_url)
    try:
        with connection.cursor() as cursor:
            # template0: never connected to, so concurrent runs can copy it at once.
            cursor.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0 ENCODING 'UTF8'")
                           .format(sql.Identifier(name)))
    finally:
        connection.close()
    return name


def drop_database(server_url: str, name: str) -> None:
    """Drop database ``name``, ending the connections still open to it first."""
    from pipeline.record.engine import dispose_all

    dispose_all()  # this process's pooled connections, closed rather than cut
    connection = _admin(server_url)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                           "WHERE datname = %s AND pid <> pg_backend_pid()", (name,))
            # WITH (FORCE) (PostgreSQL 13+) ends any that connected again in the meantime.
            force = sql.SQL(" WITH (FORCE)") if connection.server_version >= 130000 \
                else sql.SQL("")
            cursor.execute(sql.SQL("DROP DATABASE IF EXISTS {}{}").format(
                sql.Identifier(name), force))
    finally:
        connection.close()


@contextlib.contextmanager
def fresh_database(server_url: str, prefix: str = DATABASE_PREFIX) -> Iterator[str]:
    """Yield the URL (``postgresql://…``) of a new empty database on the server; drop it
    afterwards."""
    name = create_database(server_url, prefix)
    try:
        yield with_database(server_url, name)
    finally:
        drop_database(server_url, name)


def backend_database(request: pytest.FixtureRequest, folder: Path) -> str:
    """Return the database of the backend ``request.param`` names, for fixtures
    parametrised with ``BACKENDS``: "sqlite", the path of an SQLite file in ``folder``;
    "postgresql", the URL of a fresh database (the ``postgres_database`` fixture's)."""
    if request.param == "sqlite":
        return str(folder / "countersign.db")
    if request.param == "postgresql":
        return request.getfixturevalue("postgres_database")
    raise ValueError(f"unknown database backend {request.param!r}")
