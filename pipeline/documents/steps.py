"""The other steps of a document's life: decline, void, reassign, progress entries, action items."""

from __future__ import annotations

from pipeline.config import Settings
from pipeline.documents.create import render_and_prepare
from pipeline.documents.events import EventKind
from pipeline.documents.notify import dispatch, notify_parties
from pipeline.documents.repository import append_checked, document_status, load_state, report_of
from pipeline.documents.state import (
    OPEN_STATUSES,
    DocumentState,
    Status,
    involves,
    status_of,
)
from pipeline.documents.status import DocumentStatus
from pipeline.errors import BadInput, NotPermitted, NotYourTurn
from pipeline.forms.manifest import get_template
from pipeline.forms.validate import validate_form_value
from pipeline.outbound.mail import document_link
from pipeline.people.parties import get_party
from pipeline.record import ledger
from pipeline.render.libreoffice import ConverterPool


def require_reason(reason: str) -> str:
    reason = (reason or "").strip()
    if not reason or len(reason) > 2000:
        raise BadInput("请填写原因（1 到 2000 个字符）", "give a reason (1 to 2000 characters)")
    return reason


def decline_document(settings: Settings, document_id: str, party_id: str,
                     reason: str) -> DocumentStatus:
    """Record that a party declines to sign; closure is blocked, creator and earlier signers
    are told by mail."""
    reason = require_reason(reason)
    state = load_state(settings, document_id)
    if status_of(state) != Status.AWAITING:
        raise NotYourTurn(f"文档状态为 {status_of(state)}，不能拒签",
                          f"the document is {status_of(state)}; it cannot be declined")
    if not any(m.party == party_id and m.field not in state.signed for m in state.members):
        raise NotYourTurn(f"{party_id} 在此文档中没有待签的签字栏",
                          f"{party_id} has no unsigned field in this document")
    event = ledger.new_event(document_id, EventKind.DECLINED, party_id,
                             {"party": party_id, "reason": reason})
    state = append_checked(settings, state, [event])
    earlier = [s.party for s in state.signed.values()]
    notify_parties(settings, [state.creator, *earlier],
            f"[会签] {state.number} 被拒签 / declined",
            f"{party_id} 拒绝签署文档 {state.number}。\n原因：{reason}\n\n"
            f"{party_id} declined to sign {state.number}.\nReason: {reason}\n"
            f"{document_link(settings, document_id)}\n", document_id=document_id)
    return report_of(settings, state)


def may_void(state: DocumentState, actor: str, admin: bool) -> bool:
    """Return True if ``actor`` may void the document now: its creator or an administrator,
    while it is still open (awaiting signatures, declined or completed, not closed)."""
    return (admin or actor == state.creator) and status_of(state) in OPEN_STATUSES


def void_document(settings: Settings, document_id: str, actor: str,
                  reason: str, admin: bool = False) -> DocumentStatus:
    """Void a document, with a reason: its creator or an administrator, before closure."""
    reason = require_reason(reason)
    state = load_state(settings, document_id)
    if actor != state.creator and not admin:
        raise NotPermitted(f"只有创建者 {state.creator} 或管理员可以作废此文档",
                           f"only the creator ({state.creator}) or an administrator may void "
                           "this document")
    if status_of(state) not in OPEN_STATUSES:
        raise NotYourTurn(f"文档状态为 {status_of(state)}，不能作废",
                          f"the document is {status_of(state)}; it cannot be voided")
    event = ledger.new_event(document_id, EventKind.VOIDED, actor, {"reason": reason})
    return report_of(settings, append_checked(settings, state, [event]))


def reassign_step(settings: Settings, document_id: str, field: str, to_party: str,
                  actor: str, reason: str, admin: bool = False) -> DocumentStatus:
    """Give an unsigned step to another party of the same department, recording who and why:
    the document's creator, the party whose step it is, or an administrator may.

    The rendered signature row keeps the first party's name; the signature stamp and the
    ledger show who actually signed.
    """
    reason = require_reason(reason)
    state = load_state(settings, document_id)
    member = next((m for m in state.members if m.field == field), None)
    if member is None:
        raise BadInput(f"文档没有签字栏 {field!r}", f"the document has no field {field!r}")
    if not admin and actor not in (state.creator, member.party):
        raise NotPermitted(f"只有创建者、{member.party} 本人或管理员可以转交此签字步骤",
                           f"only the creator, {member.party} or an administrator may "
                           "reassign this step")
    if field in state.signed or status_of(state) != Status.AWAITING:
        raise NotYourTurn(f"签字栏 {field} 已签或文档已结束",
                          f"field {field} is signed or the document is no longer open")
    old, new = get_party(settings, member.party), get_party(settings, to_party)
    if new.dept != old.dept:
        raise BadInput(f"只能转交给同部门（{old.dept}）的签署方",
                       f"a step may only go to a party of the same department ({old.dept}); "
                       f"{to_party} is in {new.dept}")
    if any(m.party == to_party for m in state.members):
        raise BadInput(f"{to_party} 已是此文档的签署方",
                       f"{to_party} is already a party to this document")
    event = ledger.new_event(document_id, EventKind.REASSIGNED, actor,
                             {"field": field, "from": member.party, "to": to_party,
                              "reason": reason})
    append_checked(settings, state, [event])
    dispatch(settings, document_id)
    return document_status(settings, document_id)


def require_party_or_admin(state: DocumentState, actor: str, admin: bool) -> None:
    """Raise NotPermitted unless ``actor`` is a party of the document (a signer or its
    creator) or the caller is an administrator."""
    if not admin and not involves(state, actor):
        raise NotPermitted(f"{actor} 不是此文档的当事方，也不是管理员",
                           f"{actor} is neither a party of this document nor an administrator")


def add_progress_entry(settings: Settings, document_id: str, entry_date: str, text: str,
                       actor: str, pool: ConverterPool | None = None,
                       admin: bool = False) -> DocumentStatus:
    """Append a dated progress entry to an issue document.

    Before the first signature the document is rendered again with the entry in its 进展更新
    table (new revisions, fields prepared again); once anyone has signed, the signed PDF is
    never touched and the entry lives in the ledger (shown by status and the archive).
    """
    state = load_state(settings, document_id)
    require_party_or_admin(state, actor, admin)
    template = get_template(state.template)
    if "progress_updates" not in template.field_names:
        raise BadInput(f"模板 {template.key} 没有进展更新", f"template {template.key} has no "
                       "progress updates")
    if status_of(state) not in OPEN_STATUSES:
        raise NotYourTurn("文档已结束", f"the document is {status_of(state)}")
    spec = template.fields[[f.name for f in template.fields].index("progress_updates")]
    entry = validate_form_value(spec, [{"date": entry_date, "text": text}])[0]
    events = [ledger.new_event(document_id, EventKind.PROGRESS_ENTRY, actor, entry)]
    if not state.signed and pool is not None:
        form = {**state.form,
                "progress_updates": [*(state.form.get("progress_updates") or ()), entry]}
        parties = {m.party: get_party(settings, m.party) for m in state.members}
        docx_sha, pdf_sha, prepared_sha = render_and_prepare(
            settings, template, form, state.number, list(state.members), parties, pool)
        events[0] = ledger.new_event(document_id, EventKind.PROGRESS_ENTRY, actor,
                                     {**entry, "rendered": True,
                                      "stored": [docx_sha, pdf_sha]},
                                     revision_before=state.head_revision,
                                     revision_after=prepared_sha)
    return report_of(settings, append_checked(settings, state, events))


def mark_action_item_done(settings: Settings, document_id: str, item: int,
                          actor: str, admin: bool = False) -> DocumentStatus:
    """Record that minutes' action item ``item`` (1-based) is done."""
    state = load_state(settings, document_id)
    require_party_or_admin(state, actor, admin)
    if status_of(state) not in OPEN_STATUSES:
        raise NotYourTurn("文档已结束", f"the document is {status_of(state)}")
    items = state.form.get("action_items") or []
    if not 1 <= item <= len(items):
        raise BadInput(f"行动项编号应在 1 到 {len(items)} 之间",
                       f"action item must be 1..{len(items)}")
    if item in state.action_items_done:
        raise BadInput(f"行动项 {item} 已完成", f"action item {item} is already done")
    event = ledger.new_event(document_id, EventKind.ACTION_ITEM_DONE, actor, {"item": item})
    return report_of(settings, append_checked(settings, state, [event]))

