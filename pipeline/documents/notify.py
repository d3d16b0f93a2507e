"""Mail each party when its turn comes, and record what was sent."""

from __future__ import annotations

import json
import logging

from pipeline.config import Settings
from pipeline.documents.events import EventKind
from pipeline.documents.repository import append_checked, load_state
from pipeline.documents.state import (
    DocumentState,
    Member,
    next_members,
)
from pipeline.errors import BadInput
from pipeline.outbound.mail import Mail, MailFailed, document_link, send
from pipeline.people.parties import get_party
from pipeline.record import database, ledger

log = logging.getLogger(__name__)


def notify_parties(settings: Settings, party_ids: list[str], subject: str, body: str) -> list[str]:
    """Mail ``party_ids`` (unknown ids skipped); return the addresses mailed, [] on failure."""
    addresses = []
    for party_id in dict.fromkeys(party_ids):
        try:
            addresses.append(get_party(settings, party_id).email)
        except BadInput:
            continue
    if not addresses:
        return []
    try:
        send(settings, Mail(tuple(addresses), subject, body))
    except MailFailed as exc:
        log.warning("notification not sent: %s", exc)
        return []
    return addresses


def dispatch(settings: Settings, document_id: str) -> list[str]:
    """Send the document to every party whose turn it is and who has not had it yet;
    record a ``sent`` event per field mailed. Returns the fields sent. Important documents
    copy each party's superior. A relay that is down leaves them for the next pass."""
    state = load_state(settings, document_id)
    with database.connection(settings.database_path) as conn:
        events = database.select_events(conn, document_id)
    already = {(data.get("field"), data.get("party")) for data in
               (json.loads(e["data"]) for e in events if e["kind"] == EventKind.SENT)}
    sent = []
    for member in next_members(state):
        if (member.field, member.party) in already:
            continue
        party = get_party(settings, member.party)
        cc = (party.superior_email,) if state.important and party.superior_email else ()
        mail = Mail((party.email, *cc), f"[会签] 请签署 {state.number} / please sign",
                    f"{party.name}，您好：\n请审阅并签署文档 {state.number}。\n"
                    f"Please review and sign {state.number}.\n"
                    f"{document_link(settings, document_id)}\n")
        try:
            state = mail_and_record(settings, state, EventKind.SENT, member, mail)
        except MailFailed as exc:
            log.warning("document %s not sent to %s: %s", document_id, member.party, exc)
            continue
        sent.append(member.field)
    return sent


def mail_and_record(settings: Settings, state: DocumentState, kind: EventKind, member: Member,
                    mail: Mail) -> DocumentState:
    """Send ``mail`` about ``member``'s step, then record it as a ``kind`` event; return
    the new state. MailFailed (nothing recorded) when the relay refuses.

    Sent before recorded: a crash in between can repeat one mail, never lose it.
    """
    message_id = send(settings, mail)
    event = ledger.new_event(state.id, kind, "system" if kind == EventKind.SENT else "follow-up", {
        "field": member.field, "party": member.party, "to": list(mail.to),
        "message_id": message_id})
    return append_checked(settings, state, [event])

