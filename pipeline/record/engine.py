"""Connections to the database: SQLite in the data folder (the embedded default) or
PostgreSQL (``COUNTERSIGN_DATABASE_URL=postgresql://…``), through SQLAlchemy Core.

Every statement of the record layer is written once, as SQL text with ``:named``
parameters that both backends accept; the few places where they differ ask ``is_postgres``.
Connections run in autocommit mode and a write that must be atomic says so with
``transaction``, which on SQLite takes the write lock at BEGIN (``BEGIN IMMEDIATE``, so two
writers never deadlock upgrading a read lock) and on PostgreSQL can take the ledger's
advisory lock, which serialises chain appends across processes and machines.

The schema belongs to Alembic (``pipeline/record/migrations``): the first connection of a
process brings the database to the head revision, under a lock so that several servers
starting at once migrate it once.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, CursorResult, Engine, create_engine, event, text
from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError

from pipeline.errors import OperationFailed

# The head of pipeline/record/migrations/versions: a database at this revision needs no
# migration, which lets a process skip loading Alembic at all.
HEAD_REVISION = "0004"
# pg_advisory_xact_lock keys: one for chain appends, one for running migrations.
CHAIN_LOCK = 0x636F756E74657201
MIGRATION_LOCK = 0x636F756E74657202
MIGRATIONS = Path(__file__).with_name("migrations")

# Errors a caller may meet talking to either backend: the database is down, locked, full.
DatabaseError = SQLAlchemyError


class DatabaseUnavailable(OperationFailed):
    """The database did not answer (PostgreSQL down or unreachable, SQLite file unusable)."""

    code = "database_unavailable"

    @classmethod
    def because(cls, error: Exception) -> DatabaseUnavailable:
        """Return the error naming the driver's first line of ``error`` (no password: the
        drivers do not repeat it)."""
        reason = str(getattr(error, "orig", None) or error).strip().splitlines()
        detail = reason[0] if reason else type(error).__name__
        return cls(f"数据库不可用：{detail}", f"the database is unavailable: {detail}")

_engines: dict[tuple[int, str], Engine] = {}
_engines_lock = threading.Lock()


def _forget_parent_connections() -> None:
    """In a forked child, drop the parent's pooled connections without closing them: a
    close would end the parent's sessions, whose sockets the child shares."""
    global _engines_lock
    _engines_lock = threading.Lock()
    for engine in _engines.values():
        engine.dispose(close=False)
    _engines.clear()


os.register_at_fork(after_in_child=_forget_parent_connections)


def database_url(target: str | os.PathLike) -> str:
    """Return the SQLAlchemy URL for ``target``: a URL as given (``postgresql://`` and
    ``postgres://`` mean the psycopg2 driver, the one the job queue uses too), or a path
    to an SQLite file."""
    if isinstance(target, os.PathLike) or "://" not in str(target):
        return f"sqlite:///{Path(target).resolve()}"
    url = str(target)
    for plain in ("postgres://", "postgresql://"):
        if url.startswith(plain):
            url = "postgresql+psycopg2://" + url[len(plain):]
    return url


def engine_for(target: str | os.PathLike) -> Engine:
    """Return this process's engine for ``target``, created (and the schema migrated) on
    first use. Engines are kept per process: a pool inherited across fork is not used."""
    url = database_url(target)
    key = (os.getpid(), url)
    with _engines_lock:
        engine = _engines.get(key)
        if engine is None:
            engine = _engines[key] = _create(url)
            try:
                _migrate(engine)
            except BaseException:
                del _engines[key]
                engine.dispose()
                raise
    return engine


def _create(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = Path(url.removeprefix("sqlite:///"))
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            # Created 0600 before SQLite opens it (it holds token hashes, sessions and
            # everyone's form data); SQLite gives its -wal and -shm files the same mode.
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        engine = create_engine(url, isolation_level="AUTOCOMMIT",
                               connect_args={"timeout": 60, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA busy_timeout=60000")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.close()

        return engine
    return create_engine(url, isolation_level="AUTOCOMMIT", pool_pre_ping=True,
                         pool_size=5, max_overflow=10)


def migrate(target: str | os.PathLike) -> tuple[str | None, str]:
    """Bring the database ``target`` to the newest schema; return (revision before, after).
    Safe to run from several machines at once: the migration lock lets one of them work."""
    engine = _create(database_url(target))
    try:
        with engine.connect() as conn:
            before = _revision(conn)
        _migrate(engine)
        with engine.connect() as conn:
            after = _revision(conn)
    except OperationalError as exc:
        raise DatabaseUnavailable.because(exc) from exc
    finally:
        engine.dispose()
    return before, after or HEAD_REVISION


def _migrate(engine: Engine) -> None:
    """Bring the schema to HEAD_REVISION unless it is there already."""
    with engine.connect() as conn:
        if _revision(conn) == HEAD_REVISION:
            return
    with _migration_lock(engine) as conn:
        if _revision(conn) == HEAD_REVISION:
            return
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["connection"] = conn
        command.upgrade(config, "head")


@contextmanager
def _migration_lock(engine: Engine) -> Iterator[Connection]:
    """Hold the migration lock (PostgreSQL: an advisory lock; SQLite: a lock file beside
    the database) and yield a connection to migrate with. On PostgreSQL the connection is
    transactional, so that a migration that fails leaves no half-made schema."""
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="READ COMMITTED") as conn:
            conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK})
            conn.commit()  # a session lock: it outlives this transaction
            try:
                yield conn
            finally:
                conn.rollback()
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK})
                conn.commit()
        return
    with engine.connect() as conn:
        lock_path = Path(str(engine.url.database) + ".migrate.lock")
        descriptor = os.open(lock_path, os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            yield conn
        finally:
            os.close(descriptor)


def _revision(conn: Connection) -> str | None:
    """Return the Alembic revision the database is at, or None (no schema yet). Ends the
    transaction the question opened, so that the migrations' own transactions commit."""
    try:
        row = conn.execute(text("SELECT version_num FROM alembic_version")).fetchone()
    except DBAPIError:
        row = None
    finally:
        if conn.in_transaction():
            conn.rollback()
    return row[0] if row else None


def connect(target: str | os.PathLike) -> Connection:
    """Return a new connection to ``target`` (a URL or an SQLite path); the caller closes it.
    Raises DatabaseUnavailable when the database cannot be reached."""
    try:
        return engine_for(target).connect()
    except OperationalError as exc:
        raise DatabaseUnavailable.because(exc) from exc


@contextmanager
def connection(target: str | os.PathLike) -> Iterator[Connection]:
    """Yield a connection to ``target`` (a URL or an SQLite path) and close it afterwards."""
    conn = connect(target)
    try:
        yield conn
    finally:
        conn.close()


def is_postgres(conn: Connection) -> bool:
    return conn.dialect.name == "postgresql"


@contextmanager
def transaction(conn: Connection, *, chain: bool = False) -> Iterator[Connection]:
    """Run the block in one transaction that holds the write lock from its start.

    With ``chain``, on PostgreSQL the ledger's advisory lock is taken too: appends from
    every process and machine then follow one another (SQLite's write lock already
    serialises every writer of the file).
    """
    conn.exec_driver_sql("BEGIN" if is_postgres(conn) else "BEGIN IMMEDIATE")
    try:
        if chain and is_postgres(conn):
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": CHAIN_LOCK})
        yield conn
    except BaseException:
        conn.exec_driver_sql("ROLLBACK")
        raise
    conn.exec_driver_sql("COMMIT")


@lru_cache(maxsize=512)
def _statement(sql: str):
    return text(sql)


def run(conn: Connection, sql: str, params: dict | list[dict] | None = None) -> CursorResult:
    """Execute ``sql`` (``:name`` parameters) with ``params`` (a dict, or a list of dicts
    for many rows); return the result."""
    return conn.execute(_statement(sql), params if params is not None else {})


def dispose_all() -> None:
    """Close every pooled connection of this process (tests, and before exiting)."""
    with _engines_lock:
        for key in [k for k in _engines if k[0] == os.getpid()]:
            _engines.pop(key).dispose()
