"""The ledger: an append-only, hash-chained list of events.

Each event's hash is the SHA-256 of its canonical JSON (seq, document, kind, actor, time,
revisions before and after, data, and the previous event's hash), so altering, deleting or
reordering a row breaks the chain at a place ``verify_ledger`` names.
"""

from __future__ import annotations

import json
import multiprocessing
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from hashlib import sha256
from pathlib import Path
from typing import Any

from sqlalchemy import Connection

from pipeline.record import database
from pipeline.record.store import Store

GENESIS = "0" * 64
HASHED = ("seq", "document_id", "kind", "actor", "at", "revision_before", "revision_after",
          "data", "prev_hash")


def canonical(value: Any) -> str:
    """Return the canonical JSON text used in hashes and stored event data."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def hash_values(values) -> str:
    """Return the SHA-256 of an event's hashed fields (in HASHED order).

    Each field is written as ``len:text`` (``-`` for none): unambiguous whatever the text
    holds, and cheap enough to re-check hundreds of thousands of events a second.
    """
    seq, document, kind, actor, at, before, after, data, previous = values
    before = "-" if before is None else f"{len(before)}:{before}"
    after = "-" if after is None else f"{len(after)}:{after}"
    payload = (f"{seq}|{len(document)}:{document}|{len(kind)}:{kind}|{len(actor)}:{actor}|"
               f"{len(at)}:{at}|{before}|{after}|{len(data)}:{data}|{previous}")
    return sha256(payload.encode("utf-8")).hexdigest()


def event_hash(record: dict) -> str:
    """Return the hash of an event record (its ``hash`` key, if any, is ignored)."""
    return hash_values([record[key] for key in HASHED])


def now_utc() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def new_event(document_id: str, kind: str, actor: str, data: dict | None = None, *,
              revision_before: str | None = None, revision_after: str | None = None) -> dict:
    """Return an event ready for ``append``; ``data`` is stored as canonical JSON."""
    return {"document_id": document_id, "kind": kind, "actor": actor, "at": now_utc(),
            "revision_before": revision_before, "revision_after": revision_after,
            "data": canonical(data or {})}


def append(conn: Connection, events: list[dict], **kwargs: Any) -> list[dict]:
    """Append ``events`` (see database.append_events for ``expect_head``/``projection``)."""
    return database.append_events(conn, events, event_hash, **kwargs)


@dataclass
class LedgerReport:
    """What ``ledger verify`` found: events checked, revisions checked, every problem."""

    events: int = 0
    revisions: int = 0
    problems: list[str] = field(default_factory=list)
    # Anchors (RFC 3161 tokens over the chain head) checked, the last event a valid anchor
    # still vouches for, and how many events come after it.
    anchors: int = 0
    anchored_through: int = 0
    unanchored: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class _Segment:
    """What one worker found in a range of events."""

    first_seq: int = 0
    first_prev: str = ""
    last_seq: int = 0
    last_hash: str = ""
    count: int = 0
    problems: list[str] = field(default_factory=list)
    revisions: set[str] = field(default_factory=set)


def _verify_segment(args: tuple[str | Path, int, int, bool]) -> _Segment:
    """Check the events ``low``..``high`` (inclusive): hashes, links, gaps; collect the
    revisions they name when ``revisions`` is set (sending them back costs time)."""
    path, low, high, collect = args
    segment = _Segment()
    problems, revisions = segment.problems, segment.revisions
    previous_hash, previous_seq = None, None
    with database.connection(path) as conn:
        # Rows are tuples in EVENT_COLUMNS order: the first nine are the hashed fields.
        for row in database.iter_events(conn, low, high):
            seq = row[0]
            if previous_seq is None:
                segment.first_seq, segment.first_prev = seq, row[8]
            else:
                if seq != previous_seq + 1:
                    problems.append(f"事件 {previous_seq + 1}–{seq - 1} 缺失 / events "
                                    f"{previous_seq + 1}..{seq - 1} are missing (deleted rows)")
                if row[8] != previous_hash:
                    problems.append(f"事件 {seq} 的前序哈希不符 / event {seq}: previous hash "
                                    f"does not match the event before it")
            if hash_values(row[:9]) != row[9]:
                problems.append(f"事件 {seq} 内容被改动 / event {seq} ({row[2]} of {row[1]}) "
                                f"was altered: its hash does not match its content")
            if collect:
                if row[5]:
                    revisions.add(row[5])
                if row[6]:
                    revisions.add(row[6])
                if '"stored"' in row[7]:
                    revisions.update(json.loads(row[7])["stored"])
            previous_hash, previous_seq = row[9], seq
            segment.count += 1
    segment.last_seq, segment.last_hash = previous_seq or 0, previous_hash or ""
    return segment


def check_range(path: str | Path, low: int, high: int) -> tuple[list[str], int, str, str]:
    """Check the events ``low``..``high`` of the database ``path`` (a URL or an SQLite
    file; hashes, links, gaps);
    return (problems, first event number, its previous hash, the last event's hash)."""
    segment = _verify_segment((path, low, high, False))
    return segment.problems, segment.first_seq, segment.first_prev, segment.last_hash


# Below this many events one process is quicker than starting helpers.
PARALLEL_FROM = 50_000


def verify_ledger(path: str | Path, store: Store | None = None,
                  workers: int | None = None) -> LedgerReport:
    """Walk the whole chain of the database ``path`` (a URL or an SQLite file); with
    ``store``, re-hash every revision the events name. Large ledgers are checked in
    parallel ranges (one per core), then the ranges' ends are linked."""
    with database.connection(path) as conn:
        low, high = database.event_seq_range(conn)
        highest = database.highest_event_seq(conn)
    report = LedgerReport()
    workers = workers or os.cpu_count() or 1
    if high - low + 1 < PARALLEL_FROM or workers < 2:
        segments = [_verify_segment((path, low, high, store is not None))]
    else:
        step = (high - low + workers) // workers
        ranges = [(path, start, min(high, start + step - 1), store is not None)
                  for start in range(low, high + 1, step)]
        with multiprocessing.get_context("fork").Pool(len(ranges)) as pool:
            segments = pool.map(_verify_segment, ranges)
    expected_prev, expected_seq = GENESIS, 1
    revisions: set[str] = set()
    for segment in segments:
        if segment.count == 0:
            continue
        if segment.first_seq != expected_seq:
            report.problems.append(
                f"事件 {expected_seq}–{segment.first_seq - 1} 缺失 / events {expected_seq}.."
                f"{segment.first_seq - 1} are missing (deleted rows)")
        if segment.first_prev != expected_prev:
            report.problems.append(f"事件 {segment.first_seq} 的前序哈希不符 / event "
                                   f"{segment.first_seq}: previous hash does not match the "
                                   f"event before it")
        report.problems += segment.problems
        report.events += segment.count
        revisions |= segment.revisions
        expected_prev, expected_seq = segment.last_hash, segment.last_seq + 1
    if highest >= expected_seq:
        report.problems.append(f"最后的事件 {expected_seq}–{highest} 被删除 / the last "
                               f"events {expected_seq}..{highest} were deleted")
    if store is not None:
        for digest in sorted(revisions):
            report.revisions += 1
            problem = store.verify(digest)
            if problem:
                zh = {"missing": "缺失", "hidden": "被删除标记遮盖"}.get(problem, "被改动")
                en = ("hidden by a delete marker (an earlier version is still stored)"
                      if problem == "hidden" else problem)
                report.problems.append(f"修订版本 {digest} {zh} / stored revision {digest} is "
                                       f"{en}")
    return report
