"""The ledger: an append-only, hash-chained list of events.

Each event's hash is the SHA-256 of its canonical JSON (seq, document, kind, actor, time,
revisions before and after, data, and the previous event's hash), so altering, deleting or
reordering a row breaks the chain at a place ``verify_ledger`` names.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pipeline import database
from pipeline.store import RevisionStore

GENESIS = "0" * 64
HASHED = ("seq", "document_id", "kind", "actor", "at", "revision_before", "revision_after",
          "data", "prev_hash")


def canonical(value: Any) -> str:
    """Return the canonical JSON text used in hashes and stored event data."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def event_hash(record: dict) -> str:
    """Return the hash of an event record (its ``hash`` key, if any, is ignored)."""
    payload = canonical([record[key] for key in HASHED])
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def now_utc() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def new_event(document_id: str, kind: str, actor: str, data: dict | None = None, *,
              revision_before: str | None = None, revision_after: str | None = None) -> dict:
    """Return an event ready for ``append``; ``data`` is stored as canonical JSON."""
    return {"document_id": document_id, "kind": kind, "actor": actor, "at": now_utc(),
            "revision_before": revision_before, "revision_after": revision_after,
            "data": canonical(data or {})}


def append(conn: sqlite3.Connection, events: list[dict], **kwargs: Any) -> list[dict]:
    """Append ``events`` (see database.append_events for ``expect_head``/``projection``)."""
    return database.append_events(conn, events, event_hash, **kwargs)


@dataclass
class LedgerReport:
    """What ``ledger verify`` found: events checked, revisions checked, every problem."""

    events: int = 0
    revisions: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_ledger(conn: sqlite3.Connection, store: RevisionStore | None = None) -> LedgerReport:
    """Walk the whole chain; with ``store``, re-hash every revision the events name."""
    report = LedgerReport()
    previous_hash, previous_seq = GENESIS, 0
    revisions: set[str] = set()
    for row in database.iter_events(conn):
        record = dict(zip(database.EVENT_COLUMNS, row, strict=True))
        seq = record["seq"]
        report.events += 1
        if seq != previous_seq + 1:
            report.problems.append(
                f"事件 {previous_seq + 1}–{seq - 1} 缺失 / events {previous_seq + 1}..{seq - 1} "
                f"are missing (deleted rows)")
        if record["prev_hash"] != previous_hash:
            report.problems.append(f"事件 {seq} 的前序哈希不符 / event {seq}: previous hash does "
                                   f"not match the event before it")
        if event_hash(record) != record["hash"]:
            report.problems.append(f"事件 {seq} 内容被改动 / event {seq} "
                                   f"({record['kind']} of {record['document_id']}) was altered: "
                                   f"its hash does not match its content")
        for key in ("revision_before", "revision_after"):
            if record[key]:
                revisions.add(record[key])
        for digest in json.loads(record["data"] or "{}").get("stored", []):
            revisions.add(digest)
        previous_hash, previous_seq = record["hash"], seq
    highest = database.highest_event_seq(conn)
    if highest > previous_seq:
        report.problems.append(f"最后的事件 {previous_seq + 1}–{highest} 被删除 / the last "
                               f"events {previous_seq + 1}..{highest} were deleted")
    if store is not None:
        for digest in sorted(revisions):
            report.revisions += 1
            problem = store.verify(digest)
            if problem:
                zh = "缺失" if problem == "missing" else "被改动"
                report.problems.append(f"修订版本 {digest} {zh} / stored revision {digest} is "
                                       f"{problem}")
    return report
