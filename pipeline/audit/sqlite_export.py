"""The audit database: documents, ledger events, signatures, parties, deadlines and the
quarterly review as one SQLite file written with sqlite-utils, for an auditor's own tools
(``datasette OUT.db``, any SQLite client) without access to the live system.

It is read through the record layer (whichever database backend is configured) and
written afresh each time. The review figures are SQL views over ``deadlines``, so an
auditor sees how each figure is reached. Every audit bundle carries one built from its own
ledger extract, and ``verify-bundle`` holds its events against that extract
(:func:`database_problems`): the convenient copy is also a verified one.
"""

from __future__ import annotations

import json
import os
import sqlite3
import tempfile
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlite_utils

from pipeline.audit.review import Step, document_steps, period
from pipeline.audit.verify import verify_bytes
from pipeline.config import Settings
from pipeline.documents.events import EventKind
from pipeline.documents.repository import document_events, revision_store
from pipeline.documents.state import DocumentState, fold, next_due, status_of
from pipeline.errors import KNOWN_ERRORS, BadInput, UnknownDocument
from pipeline.forms.manifest import get_template
from pipeline.people.parties import Party, list_parties
from pipeline.record import database, ledger

AUDIT_DB = "audit.db"
SCHEMA_VERSION = 1
SIGNING_KINDS = {EventKind.SIGNED: "server", EventKind.UPLOAD_ACCEPTED: "upload"}

REVIEW_VIEW = """
WITH keyed AS (
  SELECT 'template' AS scope, d.template AS key, d.* FROM deadlines d
  UNION ALL SELECT 'party', d.party, d.* FROM deadlines d
  UNION ALL SELECT 'department', COALESCE(p.dept, '?'), d.* FROM deadlines d
    LEFT JOIN parties p ON p.id = d.party
), ranked AS (
  SELECT scope, key, hours,
         ROW_NUMBER() OVER (PARTITION BY scope, key ORDER BY hours) AS r,
         COUNT(*) OVER (PARTITION BY scope, key) AS n
  FROM keyed WHERE answered_at IS NOT NULL
), done AS (
  SELECT scope, key,
         AVG(CASE WHEN r IN ((n + 1) / 2, (n + 2) / 2) THEN hours END) AS median,
         MAX(CASE WHEN r = CAST((n - 1) * 0.9 AS INTEGER) + 1 THEN hours END) AS low,
         MAX(CASE WHEN r = MIN(CAST((n - 1) * 0.9 AS INTEGER) + 2, n) THEN hours END) AS high,
         MAX((n - 1) * 0.9 - CAST((n - 1) * 0.9 AS INTEGER)) AS fraction
  FROM ranked GROUP BY scope, key
)
SELECT k.scope, k.key, COUNT(*) AS steps,
       ROUND(d.median, 2) AS median_hours,
       ROUND(d.low + (d.high - d.low) * d.fraction, 2) AS p90_hours,
       SUM(k.overdue) AS overdue,
       SUM(k.deemed_consent) AS deemed_consent,
       SUM(k.outcome = 'declined') AS declines,
       CASE WHEN k.scope = 'party' THEN (SELECT COUNT(*) FROM events e
         WHERE e.kind = 'upload-rejected' AND e.actor = k.key) ELSE 0 END AS rejected_uploads
FROM keyed k LEFT JOIN done d ON d.scope = k.scope AND d.key = k.key
GROUP BY k.scope, k.key
ORDER BY CASE k.scope WHEN 'template' THEN 0 WHEN 'party' THEN 1 ELSE 2 END, k.key
"""
LONGEST_WAITS_VIEW = """
SELECT d.document_id AS document, doc.number, d.role, d.party,
       COALESCE(p.dept, '?') AS dept, ROUND(d.hours, 2) AS hours, d.outcome
FROM deadlines d JOIN documents doc ON doc.id = d.document_id
LEFT JOIN parties p ON p.id = d.party
ORDER BY d.hours DESC LIMIT 10
"""


@dataclass(frozen=True)
class DocumentRecord:
    """One document's share of an export: its events in chain order, and the verify JSON
    of its head revision (None when there was no signature to verify)."""

    events: tuple[dict, ...]
    verification: dict[str, Any] | None = None


# --- choosing what to export ---------------------------------------------------------------


def select_events(settings: Settings, document_ids: Iterable[str] = (),
                  since: str | None = None, until: str | None = None) -> list[list[dict]]:
    """Return the events (chain order) of each document named, or of each document created
    between the ISO dates ``since`` and ``until`` (inclusive, as ``report`` counts them).

    BadInput when neither or both ways are given, or a document is unknown.
    """
    ids = list(dict.fromkeys(document_ids))
    if ids and (since or until):
        raise BadInput("请给出文档编号或 --since/--until，不能同时给出",
                       "give document ids or --since/--until, not both")
    if ids:
        chosen = []
        for document_id in ids:
            events = document_events(settings, document_id)
            if not events:
                raise UnknownDocument(f"未知文档 {document_id!r}",
                                      f"unknown document {document_id!r}")
            chosen.append(events)
        return chosen
    if not (since and until):
        raise BadInput("请给出文档编号，或同时给出 --since 与 --until",
                       "give document ids, or both --since and --until")
    first, last = period(settings, since, until)
    by_document: dict[str, list[dict]] = defaultdict(list)
    with database.connection(settings.database) as conn:
        for row in database.iter_events(conn):
            event = dict(zip(database.EVENT_COLUMNS, row, strict=True))
            by_document[event["document_id"]].append(event)
    return [events for events in by_document.values()
            if first <= datetime.fromisoformat(events[0]["at"]) <= last]


def _head_verification(settings: Settings, state: DocumentState) -> dict[str, Any] | None:
    """Return the verify JSON of the document's head revision, None if nothing was signed
    (deemed consent is no signature); a missing revision is a verdict, not an error."""
    if not any(not signed.deemed for signed in state.signed.values()):
        return None
    try:
        return verify_bytes(settings, revision_store(settings).get(state.head_revision))
    except KNOWN_ERRORS as exc:
        return {"valid": False, "signatures": [], "problems": [str(exc)]}


def export_sqlite(settings: Settings, out: Path, document_ids: Iterable[str] = (),
                  since: str | None = None, until: str | None = None,
                  now: datetime | None = None) -> dict[str, Any]:
    """Write the audit database of the chosen documents to ``out`` (replacing it
    atomically); return what it holds (``export_info`` and a row count per table)."""
    chosen = select_events(settings, document_ids, since, until)
    records = [DocumentRecord(tuple(events), _head_verification(settings, fold(events)))
               for events in chosen]
    selection = f"{since}..{until}" if since else " ".join(dict.fromkeys(document_ids))
    now = now or datetime.now(settings.zone)
    out.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    os.close(handle)
    try:
        summary = write_audit_database(Path(temporary), records, list_parties(settings), now,
                                       source="ledger", selection=selection)
        os.replace(temporary, out)
    finally:
        Path(temporary).unlink(missing_ok=True)
    return summary


def bundle_database(settings: Settings, extract: list[dict], verification: dict[str, Any],
                    now: datetime) -> bytes:
    """Return the audit database of one archived document, built from its ledger extract
    so that ``verify-bundle`` can hold the two against each other."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / AUDIT_DB
        write_audit_database(path, [DocumentRecord(tuple(extract), verification)],
                             list_parties(settings), now, source="bundle",
                             selection=extract[0]["document_id"])
        return path.read_bytes()


# --- writing it ------------------------------------------------------------------------------


def write_audit_database(path: Path, records: list[DocumentRecord], parties: list[Party],
                         now: datetime, *, source: str, selection: str) -> dict[str, Any]:
    """Write a new audit database at ``path`` from ``records``; return ``export_info`` and
    the row count of each table. ``now`` is the instant waits and overdue are judged at."""
    depts = {party.id: party.dept for party in parties}
    documents, events, signatures, deadlines = [], [], [], []
    for record in records:
        state = fold(list(record.events))
        documents.append(_document_row(state))
        events += [{column: event[column] for column in database.EVENT_COLUMNS}
                   for event in record.events]
        signatures += _signature_rows(record)
        deadlines += _deadline_rows(record.events, document_steps(list(record.events), depts),
                                    now)
    referenced = {row["party"] for row in [*signatures, *deadlines] if row["party"]}
    known = {party.id: party for party in parties}
    party_rows = [_party_row(known.get(party_id), party_id) for party_id in sorted(referenced)]
    info = {"exported_at": now.isoformat(), "source": source, "selection": selection,
            "timezone": str(now.tzinfo), "schema_version": SCHEMA_VERSION}
    db = sqlite_utils.Database(path, recreate=True)
    try:
        _create_tables(db)
        db["export_info"].insert(info)
        for name, rows in (("parties", party_rows), ("documents", documents),
                           ("events", events), ("signatures", signatures),
                           ("deadlines", deadlines)):
            db[name].insert_all(rows)
        db["documents"].enable_fts(["number", "template_title", "form_text",
                                    "progress_text", "decline_reason"], tokenize="trigram")
        db.create_view("review", REVIEW_VIEW)
        db.create_view("longest_waits", LONGEST_WAITS_VIEW)
        counts = {name: db[name].count for name in
                  ("documents", "events", "signatures", "parties", "deadlines")}
    finally:
        db.close()
    return {**info, "tables": counts}


def _create_tables(db: sqlite_utils.Database) -> None:
    """Create the tables with their keys, foreign keys and indexes (before any row, so
    every column has its type even when a table stays empty)."""
    db["export_info"].create({"exported_at": str, "source": str, "selection": str,
                              "timezone": str, "schema_version": int})
    db["parties"].create({"id": str, "name": str, "dept": str, "email": str,
                          "superior_email": str, "certificate_sha256": str,
                          "created_at": str}, pk="id", not_null={"name", "dept"})
    db["documents"].create({
        "id": str, "number": str, "template": str, "template_version": int,
        "template_title": str, "status": str, "creator": str, "created_at": str,
        "closed_at": str, "next_due": str, "important": int, "head_revision": str, "archive": str,
        "declined_by": str, "decline_reason": str, "void_reason": str, "form": str,
        "form_text": str, "progress_text": str}, pk="id",
        not_null={"number", "template", "status", "created_at"})
    db["events"].create({column: int if column == "seq" else str
                         for column in database.EVENT_COLUMNS}, pk="seq",
                        foreign_keys=[("document_id", "documents", "id")],
                        not_null={"document_id", "kind", "actor", "at", "data", "prev_hash",
                                  "hash"})
    db["signatures"].create({
        "document_id": str, "field": str, "role": str, "party": str, "how": str,
        "signed_at": str, "event_seq": int, "certificate_sha256": str, "signer": str,
        "timestamp": str, "indication": str, "subindication": str, "valid": int,
        "intact": int, "trusted": int, "certificate_matches": int,
        "modification_level": str, "problems": str}, pk=("document_id", "field"),
        foreign_keys=[("document_id", "documents", "id"), ("party", "parties", "id"),
                      ("event_seq", "events", "seq")])
    db["deadlines"].create({
        "id": int, "document_id": str, "template": str, "field": str, "role": str,
        "party": str, "started_at": str, "due_at": str, "sent_at": str, "reminded_at": str,
        "escalated_at": str, "answered_at": str, "outcome": str, "deemed_consent": int,
        "overdue": int, "hours": float}, pk="id",
        foreign_keys=[("document_id", "documents", "id"), ("party", "parties", "id")],
        not_null={"document_id", "field", "party", "started_at", "due_at", "outcome"})
    db.index_foreign_keys()
    db["events"].create_index(["hash"], unique=True)
    db["events"].create_index(["kind"])
    db["documents"].create_index(["status"])
    db["documents"].create_index(["template", "created_at"])
    db["deadlines"].create_index(["outcome"])
    db["deadlines"].create_index(["hours"])


def _texts(value: Any) -> list[str]:
    """Return every non-empty string inside a form value, in order."""
    if isinstance(value, str):
        return [value] if value.strip() else []
    if isinstance(value, dict):
        return [text for item in value.values() for text in _texts(item)]
    if isinstance(value, list | tuple):
        return [text for item in value for text in _texts(item)]
    return []


def _document_row(state: DocumentState) -> dict[str, Any]:
    template = get_template(state.template)
    return {
        "id": state.id, "number": state.number, "template": state.template,
        "template_version": state.template_version, "template_title": template.title_zh,
        "status": str(status_of(state)), "creator": state.creator, "created_at": state.created_at,
        "closed_at": state.closed_at, "next_due": next_due(state, template),
        "important": int(state.important), "head_revision": state.head_revision,
        "archive": state.archive,
        "declined_by": state.declined["party"] if state.declined else None,
        "decline_reason": state.declined["reason"] if state.declined else None,
        "void_reason": state.voided["reason"] if state.voided else None,
        "form": ledger.canonical(state.form), "form_text": "\n".join(_texts(state.form)),
        "progress_text": "\n".join(_texts(list(state.progress)))}


def _party_row(party: Party | None, party_id: str) -> dict[str, Any]:
    """Return a party's row (its key file stays out); an id the live system no longer
    knows still gets a row, so that every foreign key holds."""
    if party is None:
        return {"id": party_id, "name": "?", "dept": "?"}
    return {"id": party.id, "name": party.name, "dept": party.dept, "email": party.email,
            "superior_email": party.superior_email,
            "certificate_sha256": party.certificate_sha256, "created_at": party.created_at}


def _signature_rows(record: DocumentRecord) -> list[dict[str, Any]]:
    """Return one row per signature the ledger recorded, joined by field with what the
    verification found in the PDF; and one per PDF signature the ledger does not know."""
    found = {item["field"]: item for item in (record.verification or {}).get("signatures", [])}
    rows = []
    for event in record.events:
        if event["kind"] not in SIGNING_KINDS:
            continue
        data = json.loads(event["data"])
        item = found.pop(data["field"], None)
        rows.append({
            "document_id": event["document_id"], "field": data["field"],
            "role": data.get("role"), "party": data["party"],
            "how": SIGNING_KINDS[event["kind"]], "signed_at": event["at"],
            "event_seq": event["seq"], "certificate_sha256": data.get("certificate_sha256"),
            **_verdict(item, data.get("certificate_sha256"), record.verification)})
    document_id = record.events[0]["document_id"]
    for field_name, item in found.items():
        rows.append({"document_id": document_id, "field": field_name, "role": None,
                     "party": None, "how": "not in the ledger", "signed_at": None,
                     "event_seq": None, "certificate_sha256": item.get("certificate_sha256"),
                     **_verdict(item, item.get("certificate_sha256"), record.verification)})
    return rows


def _verdict(item: dict | None, certificate: str | None,
             verification: dict | None) -> dict[str, Any]:
    """Return the verification columns of one signature row."""
    if item is None:
        problems = (verification or {}).get("problems") or []
        reason = ("没有验证 / not verified" if verification is None else
                  "PDF 中找不到该签名 / not found in the PDF")
        return {"problems": "; ".join([reason, *problems])}
    return {"signer": item.get("signer"), "timestamp": item.get("timestamp"),
            "indication": item.get("indication"), "subindication": item.get("subindication"),
            "valid": int(bool(item.get("valid"))), "intact": int(bool(item.get("intact"))),
            "trusted": int(bool(item.get("trusted"))),
            "certificate_matches": int(item.get("certificate_sha256") == certificate),
            "modification_level": item.get("modification_level"),
            "problems": "; ".join(item.get("problems") or [])}


def _deadline_rows(events: Iterable[dict], steps: list[Step],
                   now: datetime) -> list[dict[str, Any]]:
    """Return one row per step: when it began and was due, when the party was sent the
    document, reminded and escalated, and how and when it was answered."""
    first: dict[tuple[str, str], str] = {}
    for event in events:
        if event["kind"] in (EventKind.SENT, EventKind.REMINDED, EventKind.ESCALATED):
            field_name = json.loads(event["data"]).get("field", "")
            first.setdefault((event["kind"], field_name), event["at"])
    return [{
        "document_id": step.document, "template": step.template, "field": step.field,
        "role": step.role, "party": step.party, "started_at": step.started.isoformat(),
        "due_at": step.due.isoformat(), "sent_at": first.get(("sent", step.field)),
        "reminded_at": first.get(("reminded", step.field)),
        "escalated_at": first.get(("escalated", step.field)),
        "answered_at": step.ended.isoformat() if step.ended else None,
        "outcome": str(step.outcome),
        "deemed_consent": int(step.outcome == EventKind.DEEMED_CONSENT),
        "overdue": int(step.overdue(now)), "hours": step.waited(now)} for step in steps]


# --- checking a bundle's copy ----------------------------------------------------------------


def database_problems(data: bytes, extract: list[dict]) -> list[str]:
    """Return what is wrong with an audit bundle's database, held against the bundle's
    ledger extract: each event row must hash to its own content and equal the extract's
    event of the same number, none missing, none added. [] when they agree; never raises."""
    columns = database.EVENT_COLUMNS
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / AUDIT_DB
        path.write_bytes(data)
        try:
            conn = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)
            try:
                rows = conn.execute(f"SELECT {', '.join(columns)} FROM events "
                                    "ORDER BY seq").fetchall()
            finally:
                conn.close()
        except sqlite3.Error as exc:
            return [f"审计数据库无法读取 / {AUDIT_DB} cannot be read: {exc}"]
    expected = {event["seq"]: event for event in extract}
    problems = []
    for row in rows:
        event = dict(zip(columns, row, strict=True))
        seq = event["seq"]
        try:
            altered = ledger.event_hash(event) != event["hash"]
        except (TypeError, ValueError):
            altered = True
        if altered:
            problems.append(f"审计数据库的事件 {seq} 被改动 / event {seq} in {AUDIT_DB} was "
                            "altered: its hash does not match its content")
        elif seq not in expected:
            problems.append(f"审计数据库多出事件 {seq} / {AUDIT_DB} holds event {seq}, which "
                            "the ledger extract does not")
        elif any(event[column] != expected[seq].get(column) for column in columns):
            problems.append(f"审计数据库的事件 {seq} 与台账摘录不符 / event {seq} in "
                            f"{AUDIT_DB} differs from the ledger extract")
    missing = sorted(set(expected) - {row[0] for row in rows})
    if missing:
        problems.append(f"审计数据库缺少事件 {missing} / {AUDIT_DB} lacks the ledger "
                        f"extract's events {missing}")
    return problems
