"""The kinds of event a document's ledger holds, one name per thing that can happen to it.

A ``StrEnum``: each kind equals the string stored in the ledger and sent to webhooks, so the
stored chain and every JSON answer read the same as they always did.
"""

from __future__ import annotations

from enum import StrEnum


class EventKind(StrEnum):
    CREATED = "created"
    RENDERED = "rendered"
    PREPARED = "prepared"
    SENT = "sent"
    REMINDED = "reminded"
    ESCALATED = "escalated"
    DEEMED_CONSENT = "deemed-consent"
    SIGNED = "signed"
    UPLOAD_ACCEPTED = "upload-accepted"
    UPLOAD_REJECTED = "upload-rejected"
    DECLINED = "declined"
    VOIDED = "voided"
    REASSIGNED = "reassigned"
    PROGRESS_ENTRY = "progress-entry"
    ACTION_ITEM_DONE = "action-item-done"
    RESOLVED = "resolved"  # an issue's 结果确认, recorded before the responsible signs
    SUPERSEDED = "superseded"  # a declined document revised into a new one
    CLOSED = "closed"
    ARCHIVED = "archived"
    HOLD_SET = "hold-set"
    HOLD_LIFTED = "hold-lifted"
    VERIFIED = "verified"


#: The events that fill a signature field: a signature made here, an accepted upload, or
#: silence past the deadline where the template lets it count as consent.
FIELD_FILLED = frozenset({EventKind.SIGNED, EventKind.UPLOAD_ACCEPTED,
                          EventKind.DEEMED_CONSENT})
#: The events that put a real signature into the PDF.
SIGNATURES = frozenset({EventKind.SIGNED, EventKind.UPLOAD_ACCEPTED})
