"""Every SQL statement of the embedded SQLite database lives here and in its two siblings,
``security.py`` (sessions, sign-in codes, throttling, security events, token and
certificate registers) and ``outbox.py`` (mail waiting to be delivered).

The rest of the pipeline calls these small functions and never writes SQL, so a PostgreSQL
backend can replace this layer without touching the use cases. The database file is created
0600: it holds token hashes, sessions and everyone's form data.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from pipeline.record.outbox import OUTBOX_SCHEMA, insert_messages
from pipeline.record.security import SECURITY_SCHEMA

SCHEMA = """
CREATE TABLE IF NOT EXISTS number_sequences (
    scope TEXT PRIMARY KEY,
    last INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    document_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    actor TEXT NOT NULL,
    at TEXT NOT NULL,
    revision_before TEXT,
    revision_after TEXT,
    data TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE
);
CREATE INDEX IF NOT EXISTS events_document ON events (document_id, seq);
CREATE TABLE IF NOT EXISTS documents (
    id TEXT PRIMARY KEY,
    template TEXT NOT NULL,
    number TEXT NOT NULL,
    status TEXT NOT NULL,
    head_revision TEXT,
    updated_at TEXT NOT NULL,
    request_key TEXT,
    next_due TEXT,
    state TEXT,
    open INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX IF NOT EXISTS documents_status ON documents (status);
CREATE INDEX IF NOT EXISTS documents_open_due ON documents (open, next_due);
CREATE UNIQUE INDEX IF NOT EXISTS documents_request ON documents (request_key);
CREATE TABLE IF NOT EXISTS webhook_deliveries (
    url TEXT NOT NULL,
    seq INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    delivered_at TEXT,
    last_status TEXT,
    PRIMARY KEY (url, seq)
);
CREATE TABLE IF NOT EXISTS api_tokens (
    token_sha256 TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    party TEXT,
    label TEXT NOT NULL,
    created_at TEXT NOT NULL,
    revoked_at TEXT
);
CREATE TABLE IF NOT EXISTS parties (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    dept TEXT NOT NULL,
    email TEXT NOT NULL UNIQUE,
    superior_email TEXT,
    certificate_sha256 TEXT,
    key_file TEXT,
    created_at TEXT NOT NULL
);
""" + SECURITY_SCHEMA + OUTBOX_SCHEMA
# Columns added after a table first shipped: (table, column, statement that adds it).
COLUMNS_ADDED = (
    ("documents", "request_key",
     "ALTER TABLE documents ADD COLUMN request_key TEXT; CREATE UNIQUE INDEX IF NOT EXISTS "
     "documents_request ON documents (request_key);"),
    ("documents", "next_due", "ALTER TABLE documents ADD COLUMN next_due TEXT;"),
    ("documents", "state", "ALTER TABLE documents ADD COLUMN state TEXT;"),
    ("documents", "open", "ALTER TABLE documents ADD COLUMN open INTEGER NOT NULL DEFAULT 1; "
     "CREATE INDEX IF NOT EXISTS documents_open_due ON documents (open, next_due);"),
    ("api_tokens", "revoked_at", "ALTER TABLE api_tokens ADD COLUMN revoked_at TEXT;"),
)
SCHEMA_TABLES = frozenset({"number_sequences", "parties", "events", "documents",
                           "api_tokens", "webhook_deliveries", "sessions", "login_codes",
                           "throttle", "security_events", "party_certificates", "outbox"})
EVENT_COLUMNS = ("seq", "document_id", "kind", "actor", "at", "revision_before",
                 "revision_after", "data", "prev_hash", "hash")
PARTY_COLUMNS = ("id", "name", "dept", "email", "superior_email", "certificate_sha256",
                 "key_file", "created_at")


_ready_lock = threading.Lock()


def _retry_locked(statement: Callable[[], object], attempts: int = 100) -> None:
    """Run ``statement``, retrying while another connection holds the lock: switching to WAL
    and creating tables can fail at once with "database is locked" without waiting for the
    busy timeout."""
    for attempt in range(attempts):
        try:
            statement()
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == attempts - 1:
                raise
            time.sleep(0.05)


def connect(path: Path) -> sqlite3.Connection:
    """Return a connection to the database at ``path``, creating file and schema if needed.

    WAL mode and a generous busy timeout let several processes allocate numbers at once.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        # Created 0600 before SQLite opens it; SQLite gives its -wal and -shm files the
        # database file's mode.
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    # check_same_thread off: a connection is used by one thread at a time but may be closed
    # by the thread that made the pool of them.
    conn = sqlite3.connect(path, timeout=60, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout=60000")
    with _ready_lock:
        if not _schema_present(conn):
            _retry_locked(lambda: conn.execute("PRAGMA journal_mode=WAL"))
            _retry_locked(lambda: conn.executescript(SCHEMA + ANCHOR_SCHEMA))
        for table, column, ddl in COLUMNS_ADDED:
            present = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
            if column not in present:
                _retry_locked(lambda ddl=ddl: conn.executescript(ddl))
    return conn


def _schema_present(conn: sqlite3.Connection) -> bool:
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    return SCHEMA_TABLES | ANCHOR_TABLES <= tables


@contextmanager
def connection(path: Path) -> Iterator[sqlite3.Connection]:
    """Yield a connection to the database at ``path`` and close it afterwards."""
    conn = connect(path)
    try:
        yield conn
    finally:
        conn.close()


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


def insert_party(conn: sqlite3.Connection, party: dict) -> None:
    """Insert one party row; raises sqlite3.IntegrityError if the id or email is taken."""
    conn.execute(
        f"INSERT INTO parties ({', '.join(PARTY_COLUMNS)}) "
        f"VALUES ({', '.join('?' for _ in PARTY_COLUMNS)})",
        tuple(party.get(column) for column in PARTY_COLUMNS),
    )


def select_parties(conn: sqlite3.Connection) -> list[dict]:
    """Return every party row as a dict, ordered by id."""
    rows = conn.execute(f"SELECT {', '.join(PARTY_COLUMNS)} FROM parties ORDER BY id")
    return [dict(zip(PARTY_COLUMNS, row, strict=True)) for row in rows]


def select_party(conn: sqlite3.Connection, party_id: str) -> dict | None:
    """Return the party row ``party_id`` as a dict, or None."""
    row = conn.execute(f"SELECT {', '.join(PARTY_COLUMNS)} FROM parties WHERE id = ?",
                       (party_id,)).fetchone()
    return dict(zip(PARTY_COLUMNS, row, strict=True)) if row else None


# --- the ledger ---------------------------------------------------------------------------


class HeadMoved(Exception):
    """The document's head revision is not the one the caller built on."""

    def __init__(self, current: str | None) -> None:
        super().__init__(current)
        self.current = current


def append_events(conn: sqlite3.Connection, events: list[dict],
                  hasher: Callable[[dict], str], *, expect_head: str | None = None,
                  check_head: bool = False, projection: dict | list[dict] | None = None,
                  outbox: list[dict] | None = None) -> list[dict]:
    """Append ``events`` to the chain in one immediate transaction; return them as stored.

    Each event gets the previous event's hash and its own (``hasher`` over its content).
    With ``check_head``, the document's head revision must still be ``expect_head`` or
    HeadMoved is raised and nothing is written. ``projection`` (id, template, number,
    status, head_revision, next_due, state; or a list of them) updates the documents table
    in the same transaction, and so do ``outbox`` rows (see ``outbox.insert_messages``; an
    ``event`` key holding an index into ``events`` links a row to the event it announces).
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        if check_head:
            document_id = events[0]["document_id"]
            row = conn.execute("SELECT head_revision FROM documents WHERE id = ?",
                               (document_id,)).fetchone()
            current = row[0] if row else None
            if current != expect_head:
                raise HeadMoved(current)
        last = conn.execute("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1").fetchone()
        seq, prev = (last[0], last[1]) if last else (0, "0" * 64)
        stored = []
        for event in events:
            seq += 1
            record = {**event, "seq": seq, "prev_hash": prev}
            record["hash"] = prev = hasher(record)
            conn.execute(
                f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) "
                f"VALUES ({', '.join('?' for _ in EVENT_COLUMNS)})",
                tuple(record[column] for column in EVENT_COLUMNS))
            stored.append(record)
        if projection is not None:
            rows = [projection] if isinstance(projection, dict) else projection
            conn.executemany(
                "INSERT INTO documents (id, template, number, status, head_revision, "
                "updated_at, request_key, next_due, state, open) VALUES (:id, :template, "
                ":number, :status, :head_revision, :updated_at, :request_key, :next_due, "
                ":state, :open) ON CONFLICT(id) DO UPDATE SET status = excluded.status, "
                "head_revision = excluded.head_revision, updated_at = excluded.updated_at, "
                "next_due = excluded.next_due, state = excluded.state, open = excluded.open",
                [{"request_key": None, "next_due": None, "state": None, "open": 1, **row}
                 for row in rows])
        if outbox:
            insert_messages(conn, [{**row, "event_seq": stored[row["event"]]["seq"]
                                    if row.get("event") is not None else None}
                                   for row in outbox])
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return stored


def select_events(conn: sqlite3.Connection, document_id: str | None = None) -> list[dict]:
    """Return the events of one document (or all), in chain order, as dicts."""
    sql = f"SELECT {', '.join(EVENT_COLUMNS)} FROM events"
    args: tuple = ()
    if document_id is not None:
        sql += " WHERE document_id = ?"
        args = (document_id,)
    rows = conn.execute(sql + " ORDER BY seq", args)
    return [dict(zip(EVENT_COLUMNS, row, strict=True)) for row in rows]


def highest_event_seq(conn: sqlite3.Connection) -> int:
    """Return the highest event number ever assigned (AUTOINCREMENT remembers deleted ones)."""
    row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone()
    return row[0] if row else 0


def event_seq_range(conn: sqlite3.Connection) -> tuple[int, int]:
    """Return the lowest and highest event numbers present ((1, 0) when there are none)."""
    low, high = conn.execute("SELECT MIN(seq), MAX(seq) FROM events").fetchone()
    return (low, high) if low is not None else (1, 0)


def iter_events(conn: sqlite3.Connection, low: int = 1,
                high: int = 2**62) -> Iterator[tuple]:
    """Yield the event rows numbered ``low``..``high`` as tuples in EVENT_COLUMNS order."""
    cursor = conn.execute(f"SELECT {', '.join(EVENT_COLUMNS)} FROM events "
                          "WHERE seq BETWEEN ? AND ? ORDER BY seq", (low, high))
    while rows := cursor.fetchmany(10000):
        yield from rows


DOCUMENT_COLUMNS = ("id", "template", "number", "status", "head_revision", "updated_at",
                    "state")


def select_documents(conn: sqlite3.Connection, statuses: tuple[str, ...]) -> list[dict]:
    """Return the document projection rows whose status is one of ``statuses``."""
    sql = (f"SELECT {', '.join(DOCUMENT_COLUMNS)} FROM documents WHERE status IN "
           f"({', '.join('?' for _ in statuses)}) ORDER BY id")
    return [dict(zip(DOCUMENT_COLUMNS, row, strict=True)) for row in conn.execute(sql, statuses)]


# SQLite's LIMIT is a signed 64-bit integer: anything larger is an overflow, not "all".
LIMIT_CEILING = 2**62


def select_open_documents(conn: sqlite3.Connection, limit: int | None = None) -> list[dict]:
    """Return open documents, the most urgent (earliest next due time) first, at most
    ``limit`` (an index scan: fast however many documents are open)."""
    sql = (f"SELECT {', '.join(DOCUMENT_COLUMNS)} FROM documents WHERE open = 1 "
           "ORDER BY next_due, id LIMIT ?")
    bound = LIMIT_CEILING if not limit or limit < 0 else min(int(limit), LIMIT_CEILING)
    return [dict(zip(DOCUMENT_COLUMNS, row, strict=True))
            for row in conn.execute(sql, (bound,))]


def count_open_documents(conn: sqlite3.Connection) -> int:
    """Return how many documents are open."""
    return conn.execute("SELECT COUNT(*) FROM documents WHERE open = 1").fetchone()[0]


def document_for_request(conn: sqlite3.Connection, request_key: str) -> str | None:
    """Return the id of the document created under ``request_key``, if any."""
    row = conn.execute("SELECT id FROM documents WHERE request_key = ?",
                       (request_key,)).fetchone()
    return row[0] if row else None


def insert_token(conn: sqlite3.Connection, token_sha256: str, role: str, party: str | None,
                 label: str, created_at: str) -> None:
    """Store an API token's hash (the token itself is never stored)."""
    conn.execute("INSERT INTO api_tokens (token_sha256, role, party, label, created_at) "
                 "VALUES (?, ?, ?, ?, ?)", (token_sha256, role, party, label, created_at))


def select_token(conn: sqlite3.Connection, token_sha256: str) -> dict | None:
    """Return the token row for a token hash, or None (also for a revoked token)."""
    row = conn.execute("SELECT role, party, label FROM api_tokens WHERE token_sha256 = ? "
                       "AND revoked_at IS NULL", (token_sha256,)).fetchone()
    return {"role": row[0], "party": row[1], "label": row[2]} if row else None


# --- webhook deliveries ---------------------------------------------------------------------


def queue_webhook_deliveries(conn: sqlite3.Connection, url: str, now: str) -> int:
    """Queue every event not yet queued for ``url``; return how many were added."""
    cursor = conn.execute(
        "INSERT OR IGNORE INTO webhook_deliveries (url, seq, next_attempt_at) "
        "SELECT ?, seq, ? FROM events WHERE seq > COALESCE("
        "(SELECT MAX(seq) FROM webhook_deliveries WHERE url = ?), 0)", (url, now, url))
    return cursor.rowcount


def due_webhook_deliveries(conn: sqlite3.Connection, url: str, now: str,
                           limit: int = 100) -> list[tuple]:
    """Return (seq, attempts, event row) for the undelivered events of ``url``, in order,
    up to the first one that is not due yet: events are delivered in ledger order."""
    rows = conn.execute(
        f"SELECT d.seq, d.attempts, d.next_attempt_at, "
        f"{', '.join('e.' + c for c in EVENT_COLUMNS)} "
        "FROM webhook_deliveries d JOIN events e ON e.seq = d.seq "
        "WHERE d.url = ? AND d.delivered_at IS NULL ORDER BY d.seq LIMIT ?",
        (url, limit)).fetchall()
    due = []
    for row in rows:
        if row[2] > now:
            break
        due.append((row[0], row[1], dict(zip(EVENT_COLUMNS, row[3:], strict=True))))
    return due


def record_webhook_attempt(conn: sqlite3.Connection, url: str, seq: int, status: str,
                           delivered_at: str | None, next_attempt_at: str) -> None:
    """Record one delivery attempt's outcome."""
    conn.execute("UPDATE webhook_deliveries SET attempts = attempts + 1, last_status = ?, "
                 "delivered_at = ?, next_attempt_at = ? WHERE url = ? AND seq = ?",
                 (status, delivered_at, next_attempt_at, url, seq))


def webhook_delivery(conn: sqlite3.Connection, url: str, seq: int) -> dict | None:
    """Return one delivery's record, or None."""
    row = conn.execute("SELECT attempts, delivered_at, last_status, next_attempt_at FROM "
                       "webhook_deliveries WHERE url = ? AND seq = ?", (url, seq)).fetchone()
    return dict(zip(("attempts", "delivered_at", "last_status", "next_attempt_at"), row,
                    strict=True)) if row else None


# --- issue 12: ledger anchors (RFC 3161 tokens over the chain head) -----------------------
# Kept apart from the tables above: the anchor of event ``seq`` is a timestamp token whose
# message imprint is that event's hash. The same tokens are also kept (locked) in the store,
# so deleting rows here does not remove them.

ANCHOR_SCHEMA = """
CREATE TABLE IF NOT EXISTS ledger_anchors (seq INTEGER PRIMARY KEY, head_hash TEXT NOT NULL,
    token BLOB NOT NULL, token_sha256 TEXT NOT NULL, timestamped_at TEXT NOT NULL,
    recorded_at TEXT NOT NULL);
"""
ANCHOR_TABLES = frozenset({"ledger_anchors"})
ANCHOR_COLUMNS = ("seq", "head_hash", "token", "token_sha256", "timestamped_at",
                  "recorded_at")


def chain_head(conn: sqlite3.Connection) -> tuple[int, str] | None:
    """Return (seq, hash) of the last event, or None when the ledger is empty."""
    row = conn.execute("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1").fetchone()
    return (row[0], row[1]) if row else None


def insert_anchor(conn: sqlite3.Connection, anchor: dict) -> bool:
    """Record an anchor; return False if event ``seq`` already had one (kept as it was)."""
    cursor = conn.execute(
        f"INSERT OR IGNORE INTO ledger_anchors ({', '.join(ANCHOR_COLUMNS)}) "
        f"VALUES ({', '.join('?' for _ in ANCHOR_COLUMNS)})",
        tuple(anchor[column] for column in ANCHOR_COLUMNS))
    return cursor.rowcount == 1


def select_anchors(conn: sqlite3.Connection) -> list[dict]:
    """Return every anchor row, by event number."""
    rows = conn.execute(f"SELECT {', '.join(ANCHOR_COLUMNS)} FROM ledger_anchors ORDER BY seq")
    return [dict(zip(ANCHOR_COLUMNS, row, strict=True)) for row in rows]


def last_anchor(conn: sqlite3.Connection) -> dict | None:
    """Return the anchor of the highest event number, or None."""
    row = conn.execute(f"SELECT {', '.join(ANCHOR_COLUMNS)} FROM ledger_anchors "
                       "ORDER BY seq DESC LIMIT 1").fetchone()
    return dict(zip(ANCHOR_COLUMNS, row, strict=True)) if row else None


def unanchored_events(conn: sqlite3.Connection, after_seq: int) -> tuple[int, str | None]:
    """Return how many events come after ``after_seq`` and when the oldest of them was made."""
    count, oldest = conn.execute("SELECT COUNT(*), MIN(at) FROM events WHERE seq > ?",
                                 (after_seq,)).fetchone()
    return count, oldest

