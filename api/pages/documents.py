"""The start page (what waits on me, every open document) and a document's page with the
actions the visitor may take: sign, upload, decline, close, progress entries, action items."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from api.deps import OnDocument, settings_of
from api.gate import client_of
from api.pages.common import on_document, page, refusal, signed_in
from api.workers import in_signer_process, pool_of
from pipeline.documents.close import close_document
from pipeline.documents.previews import page_count, page_preview
from pipeline.documents.repository import (
    blocking_documents,
    document_events,
    download_revision,
    report_of,
)
from pipeline.documents.sign import sign_document
from pipeline.documents.state import FINISHED_STATUSES, Status
from pipeline.documents.steps import add_progress_entry, decline_document, mark_action_item_done
from pipeline.documents.uploads import UploadRejected, upload_countersigned
from pipeline.errors import KNOWN_ERRORS, UnknownDocument
from pipeline.forms.manifest import get_template, list_templates
from pipeline.people.access import Principal, Role
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
    events = [{**e, "at": datetime.fromisoformat(e["at"]).astimezone(settings.zone)
               .isoformat(timespec="seconds")} for e in document_events(settings, document_id)]
    return page(request, "document.html", report.number, status_code, s=report,
                title_zh=template.title_zh, title_en=template.title_en,
                events=events, actions=actions, open_items=open_items,
                pages=range(1, page_count(settings, document_id) + 1), flash=flash)


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
    return await _act(request, allowed, "signed", lambda: in_signer_process(
        request.app, sign_document, settings_of(request), allowed.state.id,
        allowed.principal.party, passphrase, revision or None, client_of(request)))


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


@router.post("/documents/{document_id}/decline")
async def web_decline(request: Request, reason: str = Form(...),
                      allowed: OnDocument = on_document(Action.DECLINE)) -> Response:
    return await _act(request, allowed, "declined", _in_thread(
        decline_document, settings_of(request), allowed.state.id, allowed.principal.party,
        reason))


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
        allowed.principal.actor, pool))


@router.post("/documents/{document_id}/action-done")
async def web_action_done(request: Request, item: int = Form(...),
                          allowed: OnDocument = on_document(Action.MARK_ACTION_DONE)
                          ) -> Response:
    return await _act(request, allowed, "action", _in_thread(
        mark_action_item_done, settings_of(request), allowed.state.id, item,
        allowed.principal.actor))
