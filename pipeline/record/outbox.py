"""SQL of the outbox: messages a committed step wants sent, kept until they are delivered.

A step writes its ledger events and its outbox rows in one transaction; delivery follows,
outside it, and records every attempt here. A row is claimed by moving its next attempt
past a lease, so two processes delivering at once never send the same message twice, and a
process that dies while sending leaves the row due again once the lease has passed.
"""

from __future__ import annotations

import json

from sqlalchemy import Connection

from pipeline.record.engine import run, transaction

OUTBOX_COLUMNS = ("id", "channel", "document_id", "event_seq", "payload", "created_at",
                  "attempts", "next_attempt_at", "delivered_at", "gave_up_at", "last_status",
                  "message_id")


def insert_messages(conn: Connection, rows: list[dict]) -> None:
    """Insert outbox rows ({channel, document_id?, event_seq?, payload (a dict),
    created_at}); the caller owns the transaction."""
    if not rows:
        return
    run(conn,
        "INSERT INTO outbox (channel, document_id, event_seq, payload, created_at, "
        "next_attempt_at) VALUES (:channel, :document_id, :event_seq, :payload, :created_at, "
        ":created_at)",
        [{"document_id": None, "event_seq": None, **row,
          "payload": json.dumps(row["payload"], ensure_ascii=False, sort_keys=True)}
         for row in rows])


def queue_messages(conn: Connection, rows: list[dict]) -> None:
    """Insert outbox rows in a transaction of their own."""
    with transaction(conn):
        insert_messages(conn, rows)


def _row(values: tuple) -> dict:
    row = dict(zip(OUTBOX_COLUMNS, values, strict=True))
    row["payload"] = json.loads(row["payload"])
    return row


def claim_due(conn: Connection, channel: str, now: str, lease_until: str,
              limit: int = 100) -> list[dict]:
    """Return up to ``limit`` undelivered rows of ``channel`` due at ``now`` (oldest first),
    each claimed until ``lease_until``.

    Each row is claimed by an update that re-checks it is still due: on PostgreSQL another
    server may have read the same rows, and its update, once ours commits, finds the row
    leased and takes nothing — a message is never sent by two servers."""
    with transaction(conn):
        rows = run(conn,
                   f"SELECT {', '.join(OUTBOX_COLUMNS)} FROM outbox WHERE channel = :channel "
                   "AND delivered_at IS NULL AND gave_up_at IS NULL AND next_attempt_at <= "
                   ":now ORDER BY id LIMIT :limit",
                   {"channel": channel, "now": now, "limit": limit}).fetchall()
        claimed = [row for row in rows if run(
            conn, "UPDATE outbox SET next_attempt_at = :until WHERE id = :id AND "
                  "delivered_at IS NULL AND gave_up_at IS NULL AND next_attempt_at <= :now",
            {"until": lease_until, "id": row[0], "now": now}).rowcount == 1]
    return [_row(row) for row in claimed]


def record_attempt(conn: Connection, row_id: int, *, status: str,
                   delivered_at: str | None = None, message_id: str | None = None,
                   next_attempt_at: str | None = None, gave_up_at: str | None = None) -> None:
    """Record one delivery attempt of row ``row_id``."""
    run(conn,
        "UPDATE outbox SET attempts = attempts + 1, last_status = :status, delivered_at = "
        ":delivered_at, message_id = COALESCE(:message_id, message_id), next_attempt_at = "
        "COALESCE(:next_attempt_at, next_attempt_at), gave_up_at = :gave_up_at WHERE id = :id",
        {"status": status[:300], "delivered_at": delivered_at, "message_id": message_id,
         "next_attempt_at": next_attempt_at, "gave_up_at": gave_up_at, "id": row_id})


def select_messages(conn: Connection, document_id: str | None = None,
                    pending_only: bool = False) -> list[dict]:
    """Return outbox rows (of one document, or all), oldest first."""
    sql = f"SELECT {', '.join(OUTBOX_COLUMNS)} FROM outbox WHERE 1 = 1"
    params: dict = {}
    if document_id is not None:
        sql += " AND document_id = :document"
        params["document"] = document_id
    if pending_only:
        sql += " AND delivered_at IS NULL AND gave_up_at IS NULL"
    return [_row(row) for row in run(conn, sql + " ORDER BY id", params)]
