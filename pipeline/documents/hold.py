"""Legal hold on an archived document: its archive is kept past the retention date, until
the hold is lifted.

In an S3 store with Object Lock the hold is set on every archived object (content and
archive-folder copy), and the store refuses to delete them while it is on. In the
filesystem store there is nothing a program can lock against the machine's administrator:
the hold is the ledger event that records it, the archived files stay read-only, and
``ledger verify`` names any of them changed or removed.

The store is changed first, the ledger second: after a crash in between, running the same
command again finishes it. A hold already in the asked state records nothing new.
"""

from __future__ import annotations

import json

from pipeline.config import Settings
from pipeline.documents.events import EventKind
from pipeline.documents.repository import (
    append_checked,
    document_events,
    load_state,
    report_of,
    revision_store,
)
from pipeline.documents.status import DocumentStatus
from pipeline.errors import BadInput
from pipeline.record import ledger


class NotArchived(BadInput):
    code = "not_archived"


def archived_objects(events: list[dict]) -> dict[str, str | None]:
    """Return {SHA-256: archive path or None} of every object the document's archive holds."""
    archived = [json.loads(e["data"]) for e in events if e["kind"] == EventKind.ARCHIVED]
    if not archived:
        return {}
    data = archived[-1]
    closed = [e["revision_after"] for e in events if e["kind"] == EventKind.CLOSED]
    # Archives made before archive paths were recorded still name their objects.
    objects: dict[str, str | None] = {digest: None for digest in (*data["stored"], *closed)}
    objects.update(data.get("archive_paths", {}))
    return objects


def set_legal_hold(settings: Settings, document_id: str, on: bool, actor: str = "cli"
                   ) -> DocumentStatus:
    """Set (``on``) or lift the legal hold on a document's archive; return its status.

    Records ``hold-set`` or ``hold-lifted`` in the ledger; NotArchived before ``close``.
    """
    state = load_state(settings, document_id)
    objects = archived_objects(document_events(settings, document_id))
    if not state.archive or not objects:
        raise NotArchived(f"文档 {document_id} 尚未归档，不能设置或解除法律保全",
                          f"document {document_id} is not archived yet: only an archive can "
                          "be put on legal hold")
    store = revision_store(settings)
    for digest, path in objects.items():
        store.set_hold(digest, path, on)
    if state.legal_hold != on:
        kind = EventKind.HOLD_SET if on else EventKind.HOLD_LIFTED
        event = ledger.new_event(document_id, kind, actor,
                                 {"objects": sorted(objects), "store": store.backend})
        state = append_checked(settings, state, [event])
    return report_of(settings, state)
