"""Every SQL statement of the embedded SQLite database lives here.

The rest of the pipeline calls these small functions and never writes SQL, so a PostgreSQL
backend can replace this module without touching the use cases.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS number_sequences (
    scope TEXT PRIMARY KEY,
    last INTEGER NOT NULL
);
"""


def connect(path: Path) -> sqlite3.Connection:
    """Return a connection to the database at ``path``, creating file and schema if needed.

    WAL mode and a generous busy timeout let several processes allocate numbers at once.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    # check_same_thread off: a connection is used by one thread at a time but may be closed
    # by the thread that made the pool of them.
    conn = sqlite3.connect(path, timeout=60, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA busy_timeout=60000")
    conn.executescript(SCHEMA)
    return conn


def next_in_sequence(conn: sqlite3.Connection, scope: str) -> int:
    """Return the next number of ``scope`` (1, 2, 3, …), allocated atomically.

    One statement in an immediate transaction: two processes never get the same number and
    a crash between allocation and use leaves at most an unused number, never a duplicate.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        (value,) = conn.execute(
            "INSERT INTO number_sequences (scope, last) VALUES (?, 1) "
            "ON CONFLICT(scope) DO UPDATE SET last = last + 1 RETURNING last",
            (scope,),
        ).fetchone()
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return value
