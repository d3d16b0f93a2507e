"""Reading and writing a document's record: its state folded from the ledger, its stored
revisions, guarded appends, and the status report every surface shows."""

from __future__ import annotations

from typing import Any

from pipeline.config import Settings
from pipeline.documents.state import (
    OPEN_STATUSES,
    DocumentState,
    fold,
    involves,
    next_due,
    state_from_json,
    state_to_json,
    status_of,
)
from pipeline.documents.status import DocumentStatus, status_report
from pipeline.errors import BadInput, Conflict, UnknownDocument
from pipeline.forms.manifest import get_template
from pipeline.forms.numbering import today_in
from pipeline.record import anchors, database, ledger
from pipeline.record.backends import open_store
from pipeline.record.store import Store


def revision_store(settings: Settings) -> Store:
    """Return the store ``settings`` configure (filesystem by default, or S3)."""
    return open_store(settings)


def projection(state: DocumentState) -> dict[str, Any]:
    status = status_of(state)
    return {"id": state.id, "template": state.template, "number": state.number,
            "status": status, "head_revision": state.head_revision,
            "updated_at": ledger.now_utc(), "open": int(status in OPEN_STATUSES),
            "next_due": next_due(state, get_template(state.template)),
            "state": state_to_json(state)}


def load_state(settings: Settings, document_id: str) -> DocumentState:
    """Return the state of ``document_id`` folded from its events, or raise UnknownDocument."""
    with database.connection(settings.database) as conn:
        events = database.select_events(conn, document_id)
    if not events:
        raise UnknownDocument.named(document_id)
    return fold(events)


def report_of(settings: Settings, state: DocumentState) -> DocumentStatus:
    """Return the status of ``state`` as the surfaces show it (in the service's time zone)."""
    return status_report(state, get_template(state.template), settings.zone,
                         today_in(settings).isoformat())


def document_status(settings: Settings, document_id: str) -> DocumentStatus:
    """Return the status of one document."""
    return report_of(settings, load_state(settings, document_id))


def blocking_documents(settings: Settings, limit: int | None = None,
                       party: str | None = None) -> list[DocumentStatus]:
    """Return the status of open documents (awaiting, declined or completed), the most
    urgent first; ``limit`` caps how many (None: all); ``party`` keeps only the documents
    that party created or signs."""
    with database.connection(settings.database) as conn:
        rows = database.select_open_documents(conn, limit)
        # Rows written before the state was kept in the table are folded from their events.
        states = [state_from_json(row["state"]) if row["state"]
                  else fold(database.select_events(conn, row["id"])) for row in rows]
    return [report_of(settings, state) for state in states
            if party is None or involves(state, party)]


def document_events(settings: Settings, document_id: str) -> list[dict]:
    """Return the ledger events of one document, in chain order."""
    with database.connection(settings.database) as conn:
        return database.select_events(conn, document_id)


def download_revision(settings: Settings, document_id: str, revision: int | None = None
                      ) -> bytes:
    """Return the latest PDF revision, or the N-th (1 = as rendered)."""
    state = load_state(settings, document_id)
    if revision is None:
        return revision_store(settings).get(state.head_revision)
    revisions = [e["revision_after"] for e in document_events(settings, document_id)
                 if e["revision_after"]]
    if not 1 <= revision <= len(revisions):
        raise BadInput(f"修订版本应在 1 到 {len(revisions)} 之间",
                       f"revision must be 1..{len(revisions)}")
    return revision_store(settings).get(revisions[revision - 1])


def append_checked(settings: Settings, state: DocumentState, events: list[dict],
                   outbox: list[dict] | None = None) -> DocumentState:
    """Append ``events`` (with the ``outbox`` rows that go with them) if the document's head
    is still ``state``'s; return the new state."""
    after = fold([*document_events(settings, state.id), *({**e, "seq": 0} for e in events)])
    try:
        with database.connection(settings.database) as conn:
            ledger.append(conn, events, expect_head=state.head_revision, check_head=True,
                          projection=projection(after), outbox=outbox)
    except database.HeadMoved:
        raise Conflict("文档同时被修改，请重试",
                       "the document changed meanwhile; run the command again") from None
    anchors.anchor_if_due(settings)
    return after


def verify_ledger(settings: Settings) -> ledger.LedgerReport:
    """Walk the chain, re-hash every stored revision it names, and check every anchor of
    the chain head against the events as they are now."""
    store = revision_store(settings)
    report = ledger.verify_ledger(settings.database, store)
    anchored = anchors.verify_anchors(settings, store)
    report.problems += anchored.problems
    report.anchors, report.anchored_through = anchored.anchors, anchored.anchored_through
    with database.connection(settings.database) as conn:
        head = database.chain_head(conn)
    report.unanchored = (head[0] if head else 0) - anchored.anchored_through
    return report

