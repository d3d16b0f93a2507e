"""Follow-up: reminders before a party's due time, escalation or deemed consent after it.

One pass looks at every document awaiting signatures. For each party whose turn it is:
- from ``remind_before_hours`` before the due time: one reminder to the party;
- past the due time, where the role allows silence to count as consent (未反馈视为默认):
  a deemed-consent event — shown as such everywhere, never as a signature;
- past the due time otherwise: one escalation to the party's superior (or to the party when
  no superior is configured).
Each is recorded in the ledger and never repeated: the ledger is what a pass reads.

A mail is queued in the outbox in the same transaction as its event, and the pass ends by
delivering every queued mail that is due (retrying those a relay refused earlier): a crash
can neither lose a mail nor send one that was not recorded. One document's trouble — even
an unexpected exception — is reported as a ``failed`` action and never stops the pass.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from pipeline.config import Settings
from pipeline.documents.events import EventKind
from pipeline.documents.notify import dispatch, record_and_queue
from pipeline.documents.repository import append_checked, load_state
from pipeline.documents.state import Status, due_time, next_members, unmet_requirements
from pipeline.forms.manifest import get_template
from pipeline.outbound.mail import Mail, signing_link
from pipeline.outbound.outbox import deliver_mail, mail_row
from pipeline.people.parties import get_party
from pipeline.record import database, ledger

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FollowUpAction:
    document: str
    kind: str  # sent, reminded, escalated, deemed-consent, mail-failed, or failed
    party: str
    field: str
    to: tuple[str, ...] = ()
    detail: str = ""


def _already(events: list[dict], kind: str, field: str) -> bool:
    return any(e["kind"] == kind and json.loads(e["data"]).get("field") == field
               for e in events)


def follow_up(settings: Settings, now: datetime | None = None) -> list[FollowUpAction]:
    """Run one follow-up pass at ``now`` (default: the current time); return what it did."""
    now = now or datetime.now(settings.zone)
    actions: list[FollowUpAction] = []
    with database.connection(settings.database) as conn:
        open_ids = [row["id"] for row in database.select_documents(conn, (Status.AWAITING,))]
    for document_id in open_ids:
        try:
            for field_name in dispatch(settings, document_id):  # a dispatch that was lost
                actions.append(FollowUpAction(document_id, EventKind.SENT, "", field_name))
            actions += _follow_document(settings, document_id, now)
        except Exception as exc:  # noqa: BLE001 - one document never stops the pass
            log.exception("follow-up of %s failed", document_id)
            actions.append(FollowUpAction(document_id, "failed", "", "",
                                          detail=f"{type(exc).__name__}: {exc}"))
    for delivery in deliver_mail(settings, now):
        if not delivery.delivered:
            actions.append(FollowUpAction(delivery.document_id or "", "mail-failed", "", "",
                                          delivery.to, delivery.status))
    return actions


def _follow_document(settings: Settings, document_id: str,
                     now: datetime) -> list[FollowUpAction]:
    state = load_state(settings, document_id)
    template = get_template(state.template)
    roles = {role.key: role for role in template.roles}
    with database.connection(settings.database) as conn:
        events = database.select_events(conn, document_id)
    started = datetime.fromisoformat(state.step_started_at or state.created_at)
    link = signing_link(settings, document_id)
    actions = []
    for member in next_members(state):
        role = roles[member.role]
        due = due_time(role, started)
        party = get_party(settings, member.party)
        shown_due = due.astimezone(settings.zone).strftime("%Y-%m-%d %H:%M")
        # Silence cannot fill a field the role must write itself: that is escalated instead.
        deemable = role.deemed_consent and not unmet_requirements(state, template, member)
        if now >= due and deemable:
            if _already(events, EventKind.DEEMED_CONSENT, member.field):
                continue
            event = ledger.new_event(document_id, EventKind.DEEMED_CONSENT, "follow-up", {
                "field": member.field, "role": member.role, "party": member.party,
                "due": due.isoformat()})
            notice = Mail((party.email,), f"[会签] {state.number} 未反馈视为默认 / "
                          "deemed consent",
                          f"您未在 {shown_due} 前反馈，按模板规则视为同意（非签名）。\n"
                          f"No answer by {shown_due}: recorded as deemed consent "
                          f"(not a signature).\n{link}\n")
            state = append_checked(settings, state, [event],
                                   outbox=[mail_row(notice, document_id, event=0)])
            dispatch(settings, document_id)
            actions.append(FollowUpAction(document_id, EventKind.DEEMED_CONSENT, member.party,
                                          member.field, (party.email,)))
        elif now >= due:
            if _already(events, EventKind.ESCALATED, member.field):
                continue
            to = (party.superior_email or party.email,)
            mail = Mail(to, f"[会签] 逾期未签：{state.number} / overdue",
                        f"{party.name}（{party.dept}）未在 {shown_due} 前签署 {state.number}。\n"
                        f"{party.name} ({party.dept}) has not signed {state.number}, due "
                        f"{shown_due}.\n{link}\n")
            state = record_and_queue(settings, state, EventKind.ESCALATED, member, mail)
            actions.append(FollowUpAction(document_id, EventKind.ESCALATED, member.party,
                                          member.field, mail.to))
        elif now >= due - timedelta(hours=settings.remind_before_hours):
            if _already(events, EventKind.REMINDED, member.field):
                continue
            mail = Mail((party.email,), f"[会签] 请于 {shown_due} 前签署 {state.number} / "
                        "reminder", f"{party.name}，您好：\n文档 {state.number} 等待您签署，"
                        f"截止 {shown_due}。\nDocument {state.number} awaits your signature, "
                        f"due {shown_due}.\n{link}\n")
            state = record_and_queue(settings, state, EventKind.REMINDED, member, mail)
            actions.append(FollowUpAction(document_id, EventKind.REMINDED, member.party,
                                          member.field, mail.to))
    return actions
