"""The start page (what waits on me, every open document) and a document's page with the
actions the visitor may take: sign, upload, decline, close, progress entries, action items."""

from __future__ import annotations

from datetime import date
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from api.deps import OnDocument, settings_of
from api.gate import client_of
from api.pages.common import on_document, page, refusal, signed_in
from api.pages.forms import chosen_parties, form_page, form_to_data, labelled, role_bindings
from api.workers import in_signer_process, pool_of, sign_in_worker
from pipeline.audit.bundle import bundle_bytes
from pipeline.documents.close import certificate_of_completion, close_document
from pipeline.documents.listing import DocumentQuery, list_documents
from pipeline.documents.previews import page_count, page_preview
from pipeline.documents.repository import (
    blocking_documents,
    document_events,
    download_revision,
    load_state,
    report_of,
)
from pipeline.documents.resolve import resolve_document
from pipeline.documents.revise import revise_document
from pipeline.documents.state import FINISHED_STATUSES, OPEN_STATUSES, Status
from pipeline.documents.steps import (
    add_progress_entry,
    decline_document,
    mark_action_item_done,
    reassign_step,
    void_document,
)
from pipeline.documents.uploads import UploadRejected, upload_countersigned
from pipeline.errors import KNOWN_ERRORS, BadInput, UnknownDocument, ValidationFailed
from pipeline.forms.manifest import get_template, list_templates
from pipeline.people.access import Principal, Role
from pipeline.people.parties import list_parties
from pipeline.people.policy import Action, may, party_filter, seen_document
from pipeline.people.throttle import TooManyAttempts, security_events

router = APIRouter()


@router.get("/", response_class=HTMLResponse)
def home(request: Request, principal: Principal = Depends(signed_in)) -> HTMLResponse:
    documents = blocking_documents(settings_of(request), party=party_filter(principal))
    waiting = None
    if principal.role is Role.PARTY:
        waiting = sorted(((d, n) for d in documents for n in d.waiting_for(principal.party)),
                         key=lambda pair: pair[1].due)
    notices = security_events(settings_of(request), principal.party) \
        if principal.role is Role.PARTY else []
    return page(request, "home.html", "会签 / Countersign", documents=documents,
                waiting=waiting, titles={t.key: t.title_zh for t in list_templates()},
                notices=notices)


@router.get("/documents", response_class=HTMLResponse)
def document_list(request: Request, q: str = "", status: str = "", template: str = "",
                  party: str = "", number: str = "", created_from: str = "",
                  created_to: str = "", offset: int = 0,
                  principal: Principal = Depends(signed_in)) -> HTMLResponse:
    """Every document the visitor may see, open or ended, searched and filtered."""
    settings = settings_of(request)
    try:
        query = DocumentQuery(status=status, template=template, party=party, number=number,
                              text=q, created_from=_day(created_from),
                              created_to=_day(created_to), offset=max(0, offset), limit=25)
        result = list_documents(settings, query, visible_to=party_filter(principal))
    except (BadInput, ValueError) as exc:
        query, result = DocumentQuery(limit=25), list_documents(
            settings, DocumentQuery(limit=25), visible_to=party_filter(principal))
        flash = str(exc)
    else:
        flash = None

    def page_link(new_offset: int) -> str:
        kept = {k: v for k, v in request.query_params.items() if k != "offset"}
        return urlencode({**kept, "offset": max(0, new_offset)})

    return page(request, "documents.html", "全部文档 / All documents", query=query,
                result=result, statuses=list(Status), templates=list_templates(),
                party_choice=principal.role is not Role.PARTY, page_link=page_link,
                flash=flash)


def _day(text: str) -> date | None:
    return date.fromisoformat(text) if text else None


def document_page(request: Request, principal: Principal, document_id: str,
                  flash: str | None = None, status_code: int = 200) -> HTMLResponse:
    """Return the document's page as ``principal`` may see it, with ``flash`` on top."""
    settings = settings_of(request)
    try:
        state = seen_document(settings, principal, document_id)
    except UnknownDocument as exc:
        raise refusal(exc) from None
    report = report_of(settings, state)
    template = get_template(state.template)
    still_open = report.status not in FINISHED_STATUSES
    open_items = [(n, item) for n, item in enumerate(state.form.get("action_items") or [], 1)
                  if n not in state.action_items_done]
    actions = []
    if may(principal, Action.SIGN) and report.waiting_for(principal.party or ""):
        actions.append("sign")
    if may(principal, Action.CLOSE) and report.status == Status.COMPLETED \
            and not report.blocking:
        actions.append("close")
    if may(principal, Action.ADD_PROGRESS) and still_open \
            and "progress_updates" in template.field_names:
        actions.append("progress")
    if may(principal, Action.MARK_ACTION_DONE) and still_open and open_items:
        actions.append("actions")
    admin = principal.role is Role.ADMIN
    me = principal.party or ""
    resolvers = _resolvers(template, state)
    if may(principal, Action.RESOLVE) and report.status == Status.AWAITING \
            and not state.signed and resolvers and (admin or me in resolvers):
        actions.append("resolve")
    if may(principal, Action.REVISE) and report.status == Status.DECLINED \
            and (admin or me == state.creator):
        actions.append("revise")
    reassignable = [m for m in state.members if m.field not in state.signed
                    and (admin or me in (state.creator, m.party))]
    people = list_parties(settings)
    taken = {m.party for m in state.members}
    depts = {p.id: p.dept for p in people}
    colleagues = [p for p in people if p.id not in taken
                  and p.dept in {depts.get(m.party) for m in reassignable}]
    if may(principal, Action.REASSIGN) and report.status == Status.AWAITING \
            and reassignable and colleagues:
        actions.append("reassign")
    if may(principal, Action.VOID) and report.status in OPEN_STATUSES \
            and (admin or me == state.creator):
        actions.append("void")
    linked = {}
    for other in (state.supersedes, state.superseded_by):
        if other:
            linked[other] = load_state(settings, other).number
    events = document_events(settings, document_id)
    return page(request, "document.html", report.number, status_code, s=report,
                title_zh=template.title_zh, title_en=template.title_en,
                events=events, actions=actions, open_items=open_items,
                reassignable=reassignable, colleagues=colleagues, linked=linked,
                form_values=state.form,
                focus=request.query_params.get("focus") == "sign" and "sign" in actions,
                pages=range(1, page_count(settings, document_id) + 1), flash=flash)


def _resolvers(template, state) -> set[str]:
    """Return the parties who record the result of an issue (none for other templates)."""
    roles = {r.key for r in template.roles if r.requires_fields}
    return {m.party for m in state.members if m.role in roles}


@router.get("/documents/{document_id}", response_class=HTMLResponse)
def document(request: Request, allowed: OnDocument = on_document(Action.READ_DOCUMENT)
             ) -> HTMLResponse:
    return document_page(request, allowed.principal, allowed.state.id)


@router.get("/documents/{document_id}/pdf")
def document_pdf(request: Request, allowed: OnDocument = on_document(Action.READ_DOCUMENT)
                 ) -> Response:
    return Response(download_revision(settings_of(request), allowed.state.id),
                    media_type="application/pdf")


@router.get("/documents/{document_id}/pages/{number}.png")
def document_page_image(request: Request, number: int,
                        allowed: OnDocument = on_document(Action.READ_DOCUMENT)) -> Response:
    return Response(page_preview(settings_of(request), allowed.state.id, number),
                    media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})


async def _act(request: Request, allowed: OnDocument, done: str, run) -> Response:
    """Await ``run()``; back to the document page, with the refusal when it raised."""
    try:
        await run()
    except KNOWN_ERRORS as exc:
        status = 429 if isinstance(exc, TooManyAttempts) else 400
        response = await run_in_threadpool(document_page, request, allowed.principal,
                                           allowed.state.id, str(exc), status)
        if isinstance(exc, TooManyAttempts):
            response.headers["Retry-After"] = str(exc.retry_after)
        return response
    return RedirectResponse(f"/documents/{allowed.state.id}?done={done}", status_code=303)


def _in_thread(function, *args):
    return lambda: run_in_threadpool(function, *args)


@router.post("/documents/{document_id}/sign")
async def web_sign(request: Request, passphrase: str = Form(...), revision: str = Form(""),
                   allowed: OnDocument = on_document(Action.SIGN)) -> Response:
    return await _act(request, allowed, "signed", lambda: sign_in_worker(
        request.app, settings_of(request), allowed.state.id, allowed.principal.party,
        passphrase, revision or None, client_of(request)))


@router.post("/documents/{document_id}/upload")
async def web_upload(request: Request, file: UploadFile = File(...),
                     allowed: OnDocument = on_document(Action.UPLOAD)) -> Response:
    settings = settings_of(request)
    limit = settings.max_upload_bytes
    data = await file.read(limit + 1)  # the body limit already cut the stream at its size
    if len(data) > limit:
        exc = UploadRejected("文件过大", f"the file is too large (limit {limit})")
        return await run_in_threadpool(document_page, request, allowed.principal,
                                       allowed.state.id, str(exc), 413)
    # Checking an upload parses and validates an outsider's PDF: a signer process's work.
    return await _act(request, allowed, "uploaded", lambda: in_signer_process(
        request.app, upload_countersigned, settings, allowed.state.id,
        allowed.principal.party, data))


def _confirmed(confirm: str) -> None:
    if confirm != "yes":
        raise BadInput("请勾选确认后再提交", "tick the confirmation box first")


@router.post("/documents/{document_id}/decline")
async def web_decline(request: Request, reason: str = Form(...), confirm: str = Form(""),
                      allowed: OnDocument = on_document(Action.DECLINE)) -> Response:
    async def run():
        _confirmed(confirm)
        await run_in_threadpool(decline_document, settings_of(request), allowed.state.id,
                                allowed.principal.party, reason)
    return await _act(request, allowed, "declined", run)


@router.post("/documents/{document_id}/void")
async def web_void(request: Request, reason: str = Form(...), confirm: str = Form(""),
                   allowed: OnDocument = on_document(Action.VOID)) -> Response:
    async def run():
        _confirmed(confirm)
        await run_in_threadpool(void_document, settings_of(request), allowed.state.id,
                                allowed.principal.actor, reason,
                                allowed.principal.role is Role.ADMIN)
    return await _act(request, allowed, "voided", run)


@router.post("/documents/{document_id}/reassign")
async def web_reassign(request: Request, field: str = Form(...), to: str = Form(...),
                       reason: str = Form(...),
                       allowed: OnDocument = on_document(Action.REASSIGN)) -> Response:
    return await _act(request, allowed, "reassigned", _in_thread(
        reassign_step, settings_of(request), allowed.state.id, field, to,
        allowed.principal.actor, reason, allowed.principal.role is Role.ADMIN))


@router.post("/documents/{document_id}/resolve")
async def web_resolve(request: Request, text: str = Form(...),
                      allowed: OnDocument = on_document(Action.RESOLVE)) -> Response:
    pool = await run_in_threadpool(pool_of, request)
    return await _act(request, allowed, "resolved", _in_thread(
        resolve_document, settings_of(request), allowed.state.id, text,
        allowed.principal.actor, pool, allowed.principal.role is Role.ADMIN))


@router.get("/documents/{document_id}/revise", response_class=HTMLResponse)
def revise_form(request: Request, allowed: OnDocument = on_document(Action.REVISE)
                ) -> HTMLResponse:
    """The declined document's form, filled with what it said, to change and send again."""
    state = allowed.state
    chosen: dict[str, list[str]] = {}
    for member in state.members:
        chosen.setdefault(member.role, []).append(member.party)
    return form_page(request, get_template(state.template), allowed.principal,
                     values=state.form, chosen=chosen, revising=state)


@router.post("/documents/{document_id}/revise")
async def web_revise(request: Request, allowed: OnDocument = on_document(Action.REVISE)
                     ) -> Response:
    state = allowed.state
    template = get_template(state.template)
    form = await request.form()
    data = form_to_data(template, form)
    bindings = role_bindings(template, form)
    chosen = chosen_parties(template, bindings)
    try:
        pool = await run_in_threadpool(pool_of, request)
        report = await run_in_threadpool(
            revise_document, settings_of(request), state.id, data, allowed.principal.actor,
            pool, bindings or None, allowed.principal.role is Role.ADMIN)
    except ValidationFailed as exc:
        return form_page(request, template, allowed.principal, 422, data,
                         [labelled(template, p) for p in exc.problems], chosen, revising=state)
    except KNOWN_ERRORS as exc:
        return form_page(request, template, allowed.principal, 400, data, [str(exc)], chosen,
                         revising=state)
    return RedirectResponse(f"/documents/{report.id}?done=revised", status_code=303)


@router.get("/documents/{document_id}/certificate")
def document_certificate(request: Request,
                         allowed: OnDocument = on_document(Action.READ_ARCHIVE)) -> Response:
    return Response(certificate_of_completion(settings_of(request), allowed.state.id),
                    media_type="application/pdf")


@router.get("/documents/{document_id}/bundle")
def document_bundle(request: Request, allowed: OnDocument = on_document(Action.READ_ARCHIVE)
                    ) -> Response:
    data, _ = bundle_bytes(settings_of(request), allowed.state.id)
    return Response(data, media_type="application/zip", headers={
        "Content-Disposition": f'attachment; filename="{allowed.state.id}-bundle.zip"'})


@router.post("/documents/{document_id}/close")
async def web_close(request: Request, allowed: OnDocument = on_document(Action.CLOSE)
                    ) -> Response:
    pool = await run_in_threadpool(pool_of, request)
    return await _act(request, allowed, "closed", _in_thread(
        close_document, settings_of(request), allowed.state.id, pool, allowed.principal.actor))


@router.post("/documents/{document_id}/progress")
async def web_progress(request: Request, date: str = Form(...), text: str = Form(...),
                       allowed: OnDocument = on_document(Action.ADD_PROGRESS)) -> Response:
    pool = await run_in_threadpool(pool_of, request)
    return await _act(request, allowed, "progress", _in_thread(
        add_progress_entry, settings_of(request), allowed.state.id, date, text,
        allowed.principal.actor, pool, allowed.principal.role is Role.ADMIN))


@router.post("/documents/{document_id}/action-done")
async def web_action_done(request: Request, item: int = Form(...),
                          allowed: OnDocument = on_document(Action.MARK_ACTION_DONE)
                          ) -> Response:
    return await _act(request, allowed, "action", _in_thread(
        mark_action_item_done, settings_of(request), allowed.state.id, item,
        allowed.principal.actor, allowed.principal.role is Role.ADMIN))
