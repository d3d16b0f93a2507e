"""The schema as it stood when the database moved to Alembic (SQLite and PostgreSQL).

Revision ID: 0001
Revises:
Create Date: 2026-11-29

Written with ``IF NOT EXISTS`` so that an SQLite database made before Alembic adopts it;
the columns that such a database may still lack are added afterwards.
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import inspect

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# {id}: an integer key the database assigns; {blob}: bytes; {bigint}: a 64-bit integer.
TYPES = {
    "sqlite": {"id": "INTEGER PRIMARY KEY AUTOINCREMENT", "blob": "BLOB", "bigint": "INTEGER"},
    "postgresql": {"id": "BIGSERIAL PRIMARY KEY", "blob": "BYTEA", "bigint": "BIGINT"},
}

TABLES = """
CREATE TABLE IF NOT EXISTS number_sequences (
    scope TEXT PRIMARY KEY,
    last {bigint} NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    seq {bigint} PRIMARY KEY{autoincrement},
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
CREATE TABLE IF NOT EXISTS ledger_high_water (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq {bigint} NOT NULL
);
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
CREATE TABLE IF NOT EXISTS webhook_deliveries (
    url TEXT NOT NULL,
    seq {bigint} NOT NULL,
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
CREATE TABLE IF NOT EXISTS sessions (
    session_sha256 TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    party TEXT,
    label TEXT NOT NULL,
    token_sha256 TEXT,
    csrf TEXT NOT NULL,
    client TEXT,
    created_at TEXT NOT NULL,
    last_seen_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    revoked_at TEXT
);
CREATE INDEX IF NOT EXISTS sessions_token ON sessions (token_sha256);
CREATE TABLE IF NOT EXISTS login_codes (
    code_sha256 TEXT PRIMARY KEY,
    party TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS throttle (
    key TEXT PRIMARY KEY,
    failures INTEGER NOT NULL,
    last_failure_at TEXT NOT NULL,
    blocked_until TEXT
);
CREATE TABLE IF NOT EXISTS security_events (
    id {id},
    at TEXT NOT NULL,
    kind TEXT NOT NULL,
    party TEXT,
    client TEXT,
    detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS security_events_party ON security_events (party, id);
CREATE TABLE IF NOT EXISTS party_certificates (
    party TEXT NOT NULL,
    certificate_sha256 TEXT NOT NULL,
    label TEXT NOT NULL,
    added_at TEXT NOT NULL,
    PRIMARY KEY (party, certificate_sha256)
);
CREATE TABLE IF NOT EXISTS outbox (
    id {id},
    channel TEXT NOT NULL,
    document_id TEXT,
    event_seq {bigint},
    payload TEXT NOT NULL,
    created_at TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    delivered_at TEXT,
    gave_up_at TEXT,
    last_status TEXT,
    message_id TEXT
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (delivered_at, gave_up_at, next_attempt_at);
CREATE TABLE IF NOT EXISTS ledger_anchors (
    seq {bigint} PRIMARY KEY,
    head_hash TEXT NOT NULL,
    token {blob} NOT NULL,
    token_sha256 TEXT NOT NULL,
    timestamped_at TEXT NOT NULL,
    recorded_at TEXT NOT NULL
);
"""
# Columns an SQLite database made by an early version may lack: (table, column, DDL).
COLUMNS_ADDED = (
    ("documents", "request_key", "ALTER TABLE documents ADD COLUMN request_key TEXT"),
    ("documents", "next_due", "ALTER TABLE documents ADD COLUMN next_due TEXT"),
    ("documents", "state", "ALTER TABLE documents ADD COLUMN state TEXT"),
    ("documents", "open", "ALTER TABLE documents ADD COLUMN open INTEGER NOT NULL DEFAULT 1"),
    ("api_tokens", "revoked_at", "ALTER TABLE api_tokens ADD COLUMN revoked_at TEXT"),
)
# The blocking list reads open documents by due time, undated first (SQLite's order).
INDEXES = """
CREATE UNIQUE INDEX IF NOT EXISTS documents_request ON documents (request_key);
CREATE INDEX IF NOT EXISTS documents_open_due ON documents (open, next_due{nulls_first}, id);
"""


def _statements(script: str) -> list[str]:
    return [part.strip() for part in script.split(";") if part.strip()]


def upgrade() -> None:
    bind = op.get_bind()
    dialect = bind.dialect.name
    # SQLite's events.seq stays AUTOINCREMENT, as it was before Alembic.
    types = {**TYPES[dialect],
             "autoincrement": " AUTOINCREMENT" if dialect == "sqlite" else ""}
    if dialect == "sqlite":
        types["bigint"] = "INTEGER"
    for statement in _statements(TABLES.format(**types)):
        op.execute(statement)
    inspector = inspect(bind)
    for table, column, ddl in COLUMNS_ADDED:
        if column not in {c["name"] for c in inspector.get_columns(table)}:
            op.execute(ddl)
    nulls_first = " NULLS FIRST" if dialect == "postgresql" else ""
    for statement in _statements(INDEXES.format(nulls_first=nulls_first)):
        op.execute(statement)
    # The highest event number ever used, so that deleting the newest events shows as a
    # gap: an SQLite database from before this table knew it in sqlite_sequence.
    highest = "SELECT COALESCE(MAX(seq), 0) FROM events"
    if dialect == "sqlite":
        highest = ("SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = "
                   "'events'), 0), COALESCE((SELECT MAX(seq) FROM events), 0))")
    op.execute(f"INSERT INTO ledger_high_water (id, seq) SELECT 1, ({highest}) "
               "WHERE NOT EXISTS (SELECT 1 FROM ledger_high_water)")


def downgrade() -> None:
    raise NotImplementedError("the baseline is not undone: restore a backup instead")
