"""Job records, their finished rows and the periodic passes' slots; on PostgreSQL also the
job queue's own tables (Huey's SQL storage, named ``queue_*``).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29

The embedded install keeps its queue in a file of its own (``data/queue.db``, made by the
queue itself), so its SQLite ledger gets only the records.
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TYPES = {"sqlite": {"blob": "BLOB", "bigint": "INTEGER"},
         "postgresql": {"blob": "BYTEA", "bigint": "BIGINT"}}

RECORDS = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    params TEXT NOT NULL,
    input {blob},
    status TEXT NOT NULL,
    done INTEGER NOT NULL DEFAULT 0,
    total INTEGER NOT NULL DEFAULT 0,
    result TEXT,
    error TEXT,
    owner TEXT,
    lease_until TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    created_by TEXT
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status, lease_until);
CREATE INDEX IF NOT EXISTS jobs_owner ON jobs (owner);
CREATE TABLE IF NOT EXISTS job_rows (
    job_id TEXT NOT NULL,
    line INTEGER NOT NULL,
    number TEXT,
    file TEXT,
    error TEXT,
    done_at TEXT NOT NULL,
    PRIMARY KEY (job_id, line)
);
CREATE TABLE IF NOT EXISTS job_slots (
    task TEXT NOT NULL,
    slot {bigint} NOT NULL,
    claimed_by TEXT NOT NULL,
    claimed_at TEXT NOT NULL,
    finished_at TEXT,
    problem TEXT,
    PRIMARY KEY (task, slot)
);
CREATE INDEX IF NOT EXISTS job_slots_claimed ON job_slots (claimed_at);
"""
# Huey 3.5's SQL storage (huey.contrib.sql_huey) as pipeline/jobs/queue.py names it: the
# same columns, types and indexes peewee would make, made here so that servers starting
# at once do not race to create them.
QUEUE = """
CREATE TABLE IF NOT EXISTS queue_kv (
    queue VARCHAR(255) NOT NULL,
    key VARCHAR(255) NOT NULL,
    value BYTEA NOT NULL,
    PRIMARY KEY (queue, key)
);
CREATE TABLE IF NOT EXISTS queue_schedule (
    id SERIAL NOT NULL PRIMARY KEY,
    queue VARCHAR(255) NOT NULL,
    data BYTEA NOT NULL,
    timestamp BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS schedule_queue_timestamp ON queue_schedule (queue, timestamp);
CREATE TABLE IF NOT EXISTS queue_task (
    id SERIAL NOT NULL PRIMARY KEY,
    queue VARCHAR(255) NOT NULL,
    data BYTEA NOT NULL,
    priority REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS task_priority_id ON queue_task (priority DESC, id);
CREATE TABLE IF NOT EXISTS queue_counter (
    queue VARCHAR(255) NOT NULL,
    key VARCHAR(255) NOT NULL,
    value INTEGER NOT NULL,
    PRIMARY KEY (queue, key)
);
"""


def _statements(script: str) -> list[str]:
    return [part.strip() for part in script.split(";") if part.strip()]


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    for statement in _statements(RECORDS.format(**TYPES[dialect])):
        op.execute(statement)
    if dialect == "postgresql":
        for statement in _statements(QUEUE):
            op.execute(statement)


def downgrade() -> None:
    for table in ("queue_counter", "queue_task", "queue_schedule", "queue_kv", "job_slots",
                  "job_rows", "jobs"):
        op.execute(f"DROP TABLE IF EXISTS {table}")
