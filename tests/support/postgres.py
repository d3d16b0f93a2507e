"""PostgreSQL for the tests: a fresh, empty database per test on the server the run uses
(the machine's own at 127.0.0.1:5432, or the private cluster ``make test`` starts), dropped
afterwards. A test that needs PostgreSQL fails when none answers: it is never skipped."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, text

# The server's maintenance database; COUNTERSIGN_TEST_POSTGRES_URL points elsewhere.
SERVER_URL = os.environ.get("COUNTERSIGN_TEST_POSTGRES_URL",
                            "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")


@contextmanager
def fresh_database(prefix: str = "cs_test") -> Iterator[str]:
    """Create an empty database; yield its URL; drop it (closing what still uses it)."""
    name = f"{prefix}_{secrets.token_hex(6)}"
    admin = create_engine(SERVER_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield SERVER_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        from pipeline.record.engine import dispose_all

        dispose_all()
        with admin.connect() as conn:
            conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                              "WHERE datname = :name AND pid <> pg_backend_pid()"),
                         {"name": name})
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()
