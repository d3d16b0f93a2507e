"""The document use cases: create, status, blocking, sign, download, close, ledger verify.

Each decides what may happen and records it in the ledger; rendering, conversion and
cryptography are delegated. The CLI and the API call these functions and nothing else.
"""

from __future__ import annotations

import json
import logging
import secrets
from dataclasses import asdict
from datetime import date, datetime
from typing import Any

from pipeline import database, ledger
from pipeline.completion import certificate_docx
from pipeline.config import Settings
from pipeline.conversion import ConverterPool
from pipeline.crashpoints import crash_point
from pipeline.errors import BadInput, OperationFailed, RenderError
from pipeline.generation import today_in
from pipeline.lifecycle import (
    AWAITING,
    COMPLETED,
    OPEN_STATUSES,
    DocumentState,
    Member,
    blocking,
    fold,
    involves,
    next_due,
    next_members,
    state_from_json,
    state_to_json,
    status_of,
    status_report,
)
from pipeline.mail import Mail, MailFailed, document_link, send
from pipeline.numbering import allocate_number
from pipeline.parties import Party, get_party
from pipeline.rendering import render_docx
from pipeline.signing_setup import signing_environment
from pipeline.store import RevisionStore
from pipeline.templates import Template, get_template
from pipeline.validation import validate_form, validate_form_value
from signing.appearance import Stamp
from signing.ca import LocalCA
from signing.fields import find_signature_places, prepare_fields
from signing.keys import certificate_sha256, load_pkcs12_signer
from signing.ltv import add_long_term_validation
from signing.sign import SignatureRequest, seal_pdf, sign_pdf
from signing.validation import validate_pdf

SIGN_RETRIES = 5
log = logging.getLogger(__name__)


class UnknownDocument(BadInput):
    code = "unknown_document"


class NotYourTurn(BadInput):
    code = "not_your_turn"


class Conflict(OperationFailed):
    """Another signature landed on the document first."""

    code = "conflict"


class ClosureRefused(OperationFailed):
    code = "closure_refused"


def years_after(day: date, years: int) -> date:
    """Return the same day ``years`` later (29 February becomes 28 February)."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return day.replace(year=day.year + years, day=28)


def revision_store(settings: Settings) -> RevisionStore:
    return RevisionStore(settings.data_dir / "store")


def _projection(state: DocumentState) -> dict[str, Any]:
    status = status_of(state)
    return {"id": state.id, "template": state.template, "number": state.number,
            "status": status, "head_revision": state.head_revision,
            "updated_at": ledger.now_utc(), "open": int(status in OPEN_STATUSES),
            "next_due": next_due(state, get_template(state.template)),
            "state": state_to_json(state)}


def load_state(settings: Settings, document_id: str) -> DocumentState:
    """Return the state of ``document_id`` folded from its events, or raise UnknownDocument."""
    with database.connection(settings.database_path) as conn:
        events = database.select_events(conn, document_id)
    if not events:
        raise UnknownDocument(f"未知文档 {document_id!r}", f"unknown document {document_id!r}")
    return fold(events)


def _bind_members(template: Template, bindings: list[tuple[str, str]],
                  settings: Settings) -> tuple[list[Member], dict[str, Party]]:
    roles = {role.key: role for role in template.roles}
    for role_key, _ in bindings:
        if role_key not in roles:
            raise BadInput(f"模板 {template.key} 没有角色 {role_key!r}",
                           f"template {template.key} has no role {role_key!r} (roles: "
                           f"{', '.join(roles)})")
    members, parties = [], {}
    for role in template.roles:
        bound = [party_id for key, party_id in bindings if key == role.key]
        if not role.is_group and len(bound) != 1:
            raise BadInput(f"角色 {role.key}（{role.label_zh}）需要且只需要一个签署方",
                           f"role {role.key} needs exactly one --party {role.key}=ID "
                           f"(got {len(bound)})")
        if len(set(bound)) != len(bound):
            raise BadInput(f"角色 {role.key} 中有重复的签署方",
                           f"role {role.key} names a party twice")
        for index, party_id in enumerate(bound, start=1):
            parties[party_id] = get_party(settings, party_id)
            number = index if role.is_group else None
            members.append(Member(role=role.key, order=role.order, index=number,
                                  party=party_id,
                                  field=role.key if number is None else f"{role.key}-{number}"))
    return members, parties


def _render_and_prepare(settings: Settings, template: Template, form: dict, number: str,
                        members: list[Member], parties: dict[str, Party],
                        pool: ConverterPool) -> tuple[str, str, str]:
    """Render, convert and add the signature fields; store all three; return their hashes
    (docx, rendered PDF, prepared PDF)."""
    signers: dict[str, list[dict[str, str]]] = {role.key: [] for role in template.roles}
    for member in members:
        party = parties[member.party]
        signers[member.role].append({"dept": party.dept, "name": party.name, "title": ""})
    docx = render_docx(template, form, number, signers)
    pdf = pool.convert(docx)
    places = {place.field: place for place in find_signature_places(pdf)}
    missing = [m.field for m in members if m.field not in places]
    if missing:
        raise RenderError(f"渲染后的文档缺少签字位：{', '.join(missing)}",
                          f"the rendered document has no signature place for {missing}")
    prepared = prepare_fields(pdf, [places[m.field] for m in members])
    store = revision_store(settings)
    return store.put(docx), store.put(pdf), store.put(prepared)


def create_document(settings: Settings, template_key: str, data: Any,
                    bindings: list[tuple[str, str]], pool: ConverterPool,
                    actor: str = "cli", request_key: str | None = None,
                    important: bool = False) -> dict[str, Any]:
    """Validate, number, render, convert and prepare a document; return its status.

    ``bindings`` are (role, party id) pairs; a parallel group's role is given once per member.
    With ``request_key``, repeating the call (after a crash, a timeout) returns the document
    the first call made instead of making another.
    """
    if request_key:
        with database.connection(settings.database_path) as conn:
            existing = database.document_for_request(conn, request_key)
        if existing:
            return document_status(settings, existing)
    template = get_template(template_key)
    form = validate_form(template, data)
    members, parties = _bind_members(template, bindings, settings)
    with database.connection(settings.database_path) as conn:
        number = allocate_number(conn, template, form, today_in(settings))
    rendered = _render_and_prepare(settings, template, form, number, members, parties, pool)
    docx_sha, pdf_sha, prepared_sha = rendered
    document_id = f"doc-{secrets.token_hex(6)}"
    events = [
        ledger.new_event(document_id, "created", actor, {
            "template": template.key, "template_version": template.version,
            "number": number, "form": form, "members": [asdict(m) for m in members],
            "important": important}),
        ledger.new_event(document_id, "rendered", actor, {"docx": docx_sha,
                                                          "stored": [docx_sha, pdf_sha]},
                         revision_after=pdf_sha),
        ledger.new_event(document_id, "prepared", actor,
                         {"fields": [m.field for m in members]},
                         revision_before=pdf_sha, revision_after=prepared_sha),
    ]
    state = fold([{**e, "seq": 0} for e in events])
    crash_point("create:after-store")
    with database.connection(settings.database_path) as conn:
        ledger.append(conn, events,
                      projection={**_projection(state), "request_key": request_key})
    crash_point("create:after-ledger")
    dispatch(settings, document_id)
    return document_status(settings, document_id)


def _report(settings: Settings, state: DocumentState) -> dict[str, Any]:
    return status_report(state, get_template(state.template), settings.zone,
                         today_in(settings).isoformat())


def document_status(settings: Settings, document_id: str) -> dict[str, Any]:
    """Return the ``status`` JSON of one document."""
    return _report(settings, load_state(settings, document_id))


def blocking_documents(settings: Settings, limit: int | None = None,
                       party: str | None = None) -> list[dict[str, Any]]:
    """Return the status of open documents (awaiting, declined or completed), the most
    urgent first; ``limit`` caps how many (None: all); ``party`` keeps only the documents
    that party created or signs."""
    with database.connection(settings.database_path) as conn:
        rows = database.select_open_documents(conn, limit)
        # Rows written before the state was kept in the table are folded from their events.
        states = [state_from_json(row["state"]) if row["state"]
                  else fold(database.select_events(conn, row["id"])) for row in rows]
    return [_report(settings, state) for state in states
            if party is None or involves(state, party)]


def pending_member(state: DocumentState, party_id: str) -> Member:
    status = status_of(state)
    if status != AWAITING:
        raise NotYourTurn(f"文档状态为 {status}，不能签署",
                          f"the document is {status}; nothing to sign")
    mine = [m for m in state.members if m.party == party_id]
    if not mine:
        raise NotYourTurn(f"{party_id} 不是此文档的签署方",
                          f"{party_id} is not a party to this document")
    waiting = next_members(state)
    for member in waiting:
        if member.party == party_id:
            return member
    if all(m.field in state.signed for m in mine):
        raise NotYourTurn(f"{party_id} 已经签过", f"{party_id} has already signed")
    ahead = ", ".join(f"{m.role} {m.party}" for m in waiting)
    raise NotYourTurn(f"还没轮到 {party_id}，正在等待：{ahead}",
                      f"not {party_id}'s turn yet: waiting for {ahead}")


def sign_document(settings: Settings, document_id: str, party_id: str,
                  passphrase: str, expected_revision: str | None = None) -> dict[str, Any]:
    """Sign the party's pending field on the latest revision with its own key.

    If another signature lands first, the signature is made again on the new revision —
    unless the caller named the revision it saw (``expected_revision``): then a different
    head is a Conflict, and nothing is signed.
    """
    party = get_party(settings, party_id)
    if not party.key_file:
        raise BadInput(f"{party_id} 没有签名密钥（可上传自行签署的文件）",
                       f"{party_id} has no signing key here (upload a countersigned file)")
    signer = load_pkcs12_signer((settings.data_dir / party.key_file).read_bytes(), passphrase)
    env = signing_environment(settings)
    store = revision_store(settings)
    for _attempt in range(SIGN_RETRIES):
        state = load_state(settings, document_id)
        if expected_revision and state.head_revision != expected_revision:
            raise Conflict("文档已有新的修订版本，请刷新后再签",
                           f"the document moved on: its head is {state.head_revision}, not "
                           f"{expected_revision}; review the new revision and sign again")
        member = pending_member(state, party_id)
        template = get_template(state.template)
        role = next(r for r in template.roles if r.key == member.role)
        certify = not any(not s.deemed for s in state.signed.values())
        stamp = Stamp(name=party.name, dept=party.dept,
                      reason=f"{role.label_zh}确认 / {role.label_en} approval",
                      signed_at=datetime.now(settings.zone))
        base = store.get(state.head_revision)
        signed = sign_pdf(base, SignatureRequest(member.field, stamp, certify), signer,
                          env.tsa, env.trust, env.font)
        digest = store.put(signed)
        crash_point("sign:after-store")
        event = ledger.new_event(document_id, "signed", party_id, {
            "field": member.field, "role": member.role, "party": party_id,
            "certificate_sha256": certificate_sha256(signer.signing_cert)},
            revision_before=state.head_revision, revision_after=digest)
        after = fold([*document_events(settings, document_id), {**event, "seq": 0}])
        try:
            with database.connection(settings.database_path) as conn:
                ledger.append(conn, [event], expect_head=state.head_revision, check_head=True,
                              projection=_projection(after))
        except database.HeadMoved:
            if expected_revision:
                raise Conflict("文档已有新的修订版本，请刷新后再签",
                               "another signature landed first; review and sign again"
                               ) from None
            continue
        crash_point("sign:after-ledger")
        dispatch(settings, document_id)
        return document_status(settings, document_id)
    raise Conflict("文档正被同时签署，请重试", "the document kept changing while signing; retry")


def document_events(settings: Settings, document_id: str) -> list[dict]:
    """Return the ledger events of one document, in chain order."""
    with database.connection(settings.database_path) as conn:
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


def close_document(settings: Settings, document_id: str, pool: ConverterPool,
                   actor: str = "cli") -> dict[str, Any]:
    """Check every closure rule, add long-term validation and write the archive package.

    Two steps, each its own ledger append, so that running ``close`` again after a crash
    finishes what is missing and repeats nothing: (1) closed, with the B-LTA revision;
    (2) archived, with the package that holds every event up to and including (1).
    """
    state = load_state(settings, document_id)
    template = get_template(state.template)
    store = revision_store(settings)
    if not state.closed_at:
        if status_of(state) != COMPLETED or blocking(state, template):
            reasons = blocking(state, template) or [f"status is {status_of(state)}"]
            raise ClosureRefused("文档不能关闭：" + "；".join(reasons),
                                 "the document cannot close: " + "; ".join(reasons))
        env = signing_environment(settings)
        final = add_long_term_validation(store.get(state.head_revision), env.trust, env.tsa)
        report = validate_pdf(final, env.trust.offline(), offline=True)
        if not report.valid:
            raise OperationFailed("长期验证后文档验证失败", "the closed document does not "
                                  "validate: " + json.dumps(report.as_dict(), ensure_ascii=False))
        final_sha = store.put(final)
        crash_point("close:after-store")
        closed = ledger.new_event(document_id, "closed", actor,
                                  {"validation": report.as_dict()},
                                  revision_before=state.head_revision, revision_after=final_sha)
        state = append_checked(settings, state, [closed])
        crash_point("close:after-closed")
    if state.archive:
        return _report(settings, state)
    events = document_events(settings, document_id)
    closed_data = json.loads(next(e for e in events if e["kind"] == "closed")["data"])
    env = signing_environment(settings)
    certificate = seal_pdf(
        pool.convert(certificate_docx(state, template, events, state.head_revision,
                                      settings.zone)),
        LocalCA.open(settings.ca_dir).system_signer(), env.tsa, env.trust,
        "完成证明 / certificate of completion")
    certificate_sha = store.put(certificate, archive=True)
    store.put(store.get(state.head_revision), archive=True)
    retention_until = years_after(datetime.fromisoformat(state.closed_at).date(),
                                  template.retention_years)
    package = {
        "document": document_id, "number": state.number, "template": state.template,
        "template_version": state.template_version, "final_pdf": state.head_revision,
        "certificate_of_completion": certificate_sha,
        "retention_years": template.retention_years,
        "retain_until": retention_until.isoformat(),
        "validation": closed_data["validation"],
        "ledger": [{k: e[k] for k in (*ledger.HASHED, "hash")} for e in events],
    }
    package_sha = store.put(ledger.canonical(package).encode("utf-8"), archive=True)
    crash_point("close:after-package")
    archived = ledger.new_event(document_id, "archived", actor,
                                {"package": package_sha, "certificate": certificate_sha,
                                 "retain_until": retention_until.isoformat(),
                                 "stored": [package_sha, certificate_sha]})
    state = append_checked(settings, state, [archived])
    return _report(settings, state)


def append_checked(settings: Settings, state: DocumentState, events: list[dict]
                    ) -> DocumentState:
    """Append ``events`` if the document's head is still ``state``'s; return the new state."""
    after = fold([*document_events(settings, state.id), *({**e, "seq": 0} for e in events)])
    try:
        with database.connection(settings.database_path) as conn:
            ledger.append(conn, events, expect_head=state.head_revision, check_head=True,
                          projection=_projection(after))
    except database.HeadMoved:
        raise Conflict("文档同时被修改，请重试",
                       "the document changed meanwhile; run the command again") from None
    return after


def verify_ledger(settings: Settings) -> ledger.LedgerReport:
    """Walk the chain and re-hash every stored revision it names."""
    return ledger.verify_ledger(settings.database_path, revision_store(settings))


def _notify(settings: Settings, party_ids: list[str], subject: str, body: str) -> list[str]:
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
               (json.loads(e["data"]) for e in events if e["kind"] == "sent")}
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
            state = mail_and_record(settings, state, "sent", member, mail)
        except MailFailed as exc:
            log.warning("document %s not sent to %s: %s", document_id, member.party, exc)
            continue
        sent.append(member.field)
    return sent


def mail_and_record(settings: Settings, state: DocumentState, kind: str, member: Member,
                    mail: Mail) -> DocumentState:
    """Send ``mail`` about ``member``'s step, then record it as a ``kind`` event; return
    the new state. MailFailed (nothing recorded) when the relay refuses.

    Sent before recorded: a crash in between can repeat one mail, never lose it.
    """
    message_id = send(settings, mail)
    event = ledger.new_event(state.id, kind, "system" if kind == "sent" else "follow-up", {
        "field": member.field, "party": member.party, "to": list(mail.to),
        "message_id": message_id})
    return append_checked(settings, state, [event])


def _require_reason(reason: str) -> str:
    reason = (reason or "").strip()
    if not reason or len(reason) > 2000:
        raise BadInput("请填写原因（1 到 2000 个字符）", "give a reason (1 to 2000 characters)")
    return reason


def decline_document(settings: Settings, document_id: str, party_id: str,
                     reason: str) -> dict[str, Any]:
    """Record that a party declines to sign; closure is blocked, creator and earlier signers
    are told by mail."""
    reason = _require_reason(reason)
    state = load_state(settings, document_id)
    if status_of(state) != AWAITING:
        raise NotYourTurn(f"文档状态为 {status_of(state)}，不能拒签",
                          f"the document is {status_of(state)}; it cannot be declined")
    if not any(m.party == party_id and m.field not in state.signed for m in state.members):
        raise NotYourTurn(f"{party_id} 在此文档中没有待签的签字栏",
                          f"{party_id} has no unsigned field in this document")
    event = ledger.new_event(document_id, "declined", party_id,
                             {"party": party_id, "reason": reason})
    state = append_checked(settings, state, [event])
    earlier = [s.party for s in state.signed.values()]
    _notify(settings, [state.creator, *earlier],
            f"[会签] {state.number} 被拒签 / declined",
            f"{party_id} 拒绝签署文档 {state.number}。\n原因：{reason}\n\n"
            f"{party_id} declined to sign {state.number}.\nReason: {reason}\n"
            f"{document_link(settings, document_id)}\n")
    return _report(settings, state)


def void_document(settings: Settings, document_id: str, actor: str,
                  reason: str, admin: bool = False) -> dict[str, Any]:
    """Void a document; only its creator (or an administrator) may."""
    reason = _require_reason(reason)
    state = load_state(settings, document_id)
    if actor != state.creator and not admin:
        raise NotYourTurn(f"只有创建者 {state.creator} 可以作废此文档",
                          f"only the creator ({state.creator}) may void this document")
    if status_of(state) in ("closed", "voided"):
        raise NotYourTurn(f"文档状态为 {status_of(state)}，不能作废",
                          f"the document is {status_of(state)}; it cannot be voided")
    event = ledger.new_event(document_id, "voided", actor, {"reason": reason})
    return _report(settings, append_checked(settings, state, [event]))


def reassign_step(settings: Settings, document_id: str, field: str, to_party: str,
                  actor: str, reason: str) -> dict[str, Any]:
    """Give an unsigned step to another party of the same department, recording who and why.

    The rendered signature row keeps the first party's name; the signature stamp and the
    ledger show who actually signed.
    """
    reason = _require_reason(reason)
    state = load_state(settings, document_id)
    member = next((m for m in state.members if m.field == field), None)
    if member is None:
        raise BadInput(f"文档没有签字栏 {field!r}", f"the document has no field {field!r}")
    if field in state.signed or status_of(state) != AWAITING:
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
    event = ledger.new_event(document_id, "reassigned", actor,
                             {"field": field, "from": member.party, "to": to_party,
                              "reason": reason})
    append_checked(settings, state, [event])
    dispatch(settings, document_id)
    return document_status(settings, document_id)


def add_progress_entry(settings: Settings, document_id: str, entry_date: str, text: str,
                       actor: str, pool: ConverterPool | None = None) -> dict[str, Any]:
    """Append a dated progress entry to an issue document.

    Before the first signature the document is rendered again with the entry in its 进展更新
    table (new revisions, fields prepared again); once anyone has signed, the signed PDF is
    never touched and the entry lives in the ledger (shown by status and the archive).
    """
    state = load_state(settings, document_id)
    template = get_template(state.template)
    if "progress_updates" not in template.field_names:
        raise BadInput(f"模板 {template.key} 没有进展更新", f"template {template.key} has no "
                       "progress updates")
    if status_of(state) in ("closed", "voided"):
        raise NotYourTurn("文档已结束", f"the document is {status_of(state)}")
    spec = template.fields[[f.name for f in template.fields].index("progress_updates")]
    entry = validate_form_value(spec, [{"date": entry_date, "text": text}])[0]
    events = [ledger.new_event(document_id, "progress-entry", actor, entry)]
    if not state.signed and pool is not None:
        form = {**state.form, "progress_updates": [*state.form["progress_updates"], entry]}
        parties = {m.party: get_party(settings, m.party) for m in state.members}
        docx_sha, pdf_sha, prepared_sha = _render_and_prepare(
            settings, template, form, state.number, list(state.members), parties, pool)
        events[0] = ledger.new_event(document_id, "progress-entry", actor,
                                     {**entry, "rendered": True,
                                      "stored": [docx_sha, pdf_sha]},
                                     revision_before=state.head_revision,
                                     revision_after=prepared_sha)
    return _report(settings, append_checked(settings, state, events))


def mark_action_item_done(settings: Settings, document_id: str, item: int,
                          actor: str) -> dict[str, Any]:
    """Record that minutes' action item ``item`` (1-based) is done."""
    state = load_state(settings, document_id)
    items = state.form.get("action_items") or []
    if not 1 <= item <= len(items):
        raise BadInput(f"行动项编号应在 1 到 {len(items)} 之间",
                       f"action item must be 1..{len(items)}")
    if item in state.action_items_done:
        raise BadInput(f"行动项 {item} 已完成", f"action item {item} is already done")
    event = ledger.new_event(document_id, "action-item-done", actor, {"item": item})
    return _report(settings, append_checked(settings, state, [event]))
