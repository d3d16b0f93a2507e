"""Mail each party when its turn comes, and record what was queued.

Every function here runs after a step has committed: it records its ``sent`` events and the
mails in one transaction (the outbox), then tries to deliver them. It never raises — a
failure is logged and the follow-up pass, which dispatches every open document again,
catches up — so trouble with mail can never turn a committed step into an error.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pipeline.config import Settings
from pipeline.documents.events import EventKind
from pipeline.documents.repository import append_checked, load_state
from pipeline.documents.state import (
    DocumentState,
    Member,
    Status,
    next_members,
)
from pipeline.errors import BadInput
from pipeline.outbound.mail import Mail, signing_link
from pipeline.outbound.outbox import deliver_mail, mail_row, queue_mail
from pipeline.people.parties import get_party
from pipeline.record import database, ledger, outbox

log = logging.getLogger(__name__)


def notify_parties(settings: Settings, party_ids: list[str], subject: str, body: str,
                   document_id: str | None = None) -> list[str]:
    """Queue one mail to ``party_ids`` (unknown ids skipped) and try to deliver it; return
    the addresses it goes to."""
    try:
        addresses = []
        for party_id in dict.fromkeys(party_ids):
            try:
                addresses.append(get_party(settings, party_id).email)
            except BadInput:
                continue
        if addresses:
            queue_mail(settings, [Mail(tuple(addresses), subject, body)], document_id)
            deliver_mail(settings)
        return addresses
    except Exception:  # noqa: BLE001 - after a committed step: log, never fail it
        log.exception("notification about %s not queued", document_id)
        return []


def dispatch(settings: Settings, document_id: str) -> list[str]:
    """Send the document to every party whose turn it is and who has not had it yet:
    record a ``sent`` event per field and queue its mail, together; then deliver. Returns
    the fields queued. Important documents copy each party's superior."""
    try:
        fields = _queue_turns(settings, document_id)
        deliver_mail(settings)
        return fields
    except Exception:  # noqa: BLE001 - after a committed step: log, never fail it
        log.exception("document %s not dispatched; the follow-up pass tries again",
                      document_id)
        return []


def _queue_turns(settings: Settings, document_id: str) -> list[str]:
    state = load_state(settings, document_id)
    with database.connection(settings.database) as conn:
        events = database.select_events(conn, document_id)
    already = {(data.get("field"), data.get("party")) for data in
               (json.loads(e["data"]) for e in events if e["kind"] == EventKind.SENT)}
    records, rows, fields = [], [], []
    for member in next_members(state):
        if (member.field, member.party) in already:
            continue
        party = get_party(settings, member.party)
        cc = (party.superior_email,) if state.important and party.superior_email else ()
        mail = Mail((party.email, *cc), f"[会签] 请签署 {state.number} / please sign",
                    f"{party.name}，您好：\n请审阅并签署文档 {state.number}。\n"
                    f"Please review and sign {state.number}.\n"
                    f"{signing_link(settings, document_id)}\n")
        records.append(turn_event(state, EventKind.SENT, member, mail))
        rows.append(mail_row(mail, document_id, event=len(records) - 1))
        fields.append(member.field)
    if records:
        append_checked(settings, state, records, outbox=rows)
    return fields


def turn_event(state: DocumentState, kind: EventKind, member: Member, mail: Mail) -> dict:
    """Return the ledger event recording that ``mail`` about ``member``'s step is queued."""
    actor = "system" if kind == EventKind.SENT else "follow-up"
    return ledger.new_event(state.id, kind, actor, {
        "field": member.field, "party": member.party, "to": list(mail.to)})


def record_and_queue(settings: Settings, state: DocumentState, kind: EventKind, member: Member,
                     mail: Mail) -> DocumentState:
    """Record a ``kind`` event about ``member``'s step and queue ``mail`` with it, in one
    transaction; return the new state (delivery is the caller's next step)."""
    return append_checked(settings, state, [turn_event(state, kind, member, mail)],
                          outbox=[mail_row(mail, state.id, event=0)])


@dataclass(frozen=True)
class Undelivered:
    """A mail that could not be delivered: the sign that mail delivery is failing."""

    document: str | None
    number: str
    to: tuple[str, ...]
    attempts: int
    status: str
    since: str  # UTC ISO time it was queued


def undelivered_mail(settings: Settings, older_than: timedelta = timedelta(minutes=5),
                     now: datetime | None = None) -> list[Undelivered]:
    """Return the mails queued longer than ``older_than`` that every attempt so far failed
    to deliver (or that were given up), oldest first."""
    limit = ((now or datetime.now(UTC)) - older_than).isoformat()
    found = []
    with database.connection(settings.database) as conn:
        rows = [row for row in outbox.select_messages(conn)
                if row["delivered_at"] is None and row["attempts"] > 0
                and row["created_at"] <= limit]
        numbers = {row["id"]: row["number"]
                   for row in database.select_documents(conn, tuple(Status))}
    for row in rows:
        payload = row["payload"]
        found.append(Undelivered(row["document_id"], numbers.get(row["document_id"], ""),
                                 tuple(payload.get("to", ())), row["attempts"],
                                 row["last_status"] or "", row["created_at"]))
    return found
