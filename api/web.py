"""The web pages: server-rendered, Chinese first with English beside it, usable on a phone.

People sign in with a one-time link sent by e-mail (or an access token); the pages call the
same use cases as the API and the CLI.
"""

from __future__ import annotations

import secrets
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from api.workers import in_signer_process, pool_of
from pipeline.audit.review import review, review_chart
from pipeline.audit.verify import verify_bytes
from pipeline.config import Settings
from pipeline.documents.close import close_document
from pipeline.documents.create import create_document
from pipeline.documents.previews import page_count, page_preview
from pipeline.documents.repository import (
    blocking_documents,
    document_events,
    document_status,
    download_revision,
    load_state,
)
from pipeline.documents.sign import sign_document
from pipeline.documents.steps import add_progress_entry, decline_document, mark_action_item_done
from pipeline.documents.uploads import MAX_UPLOAD_BYTES, UploadRejected, upload_countersigned
from pipeline.errors import (
    KNOWN_ERRORS,
    BadInput,
    ValidationFailed,
)
from pipeline.forms.manifest import get_template, list_templates
from pipeline.outbound.mail import Mail, MailFailed, send
from pipeline.people.access import Principal, create_token, principal_for
from pipeline.people.parties import list_parties

COOKIE = "countersign_token"
LINK_LIFETIME_S = 15 * 60
TYPE_HINTS = {
    "list": "每行一项 / one per line",
    "table": "每行一条，列用 | 分隔 / one row per line, columns separated by |",
    "object": "各项用 | 分隔 / parts separated by |",
}

templates = Jinja2Templates(directory=str(Path(__file__).with_name("templates")))
router = APIRouter(include_in_schema=False)


def _settings(request: Request) -> Settings:
    return request.app.state.settings


def _lang(request: Request) -> str:
    return request.query_params.get("lang") or request.cookies.get("lang") or "zh"


def _principal(request: Request) -> Principal | None:
    token = request.cookies.get(COOKIE)
    return principal_for(_settings(request), token) if token else None


def page(request: Request, name: str, title: str, status_code: int = 200,
         **context: Any) -> HTMLResponse:
    lang = _lang(request)

    def t(zh: str, en: str) -> str:
        return f"{en}" if lang == "en" else f"{zh}"

    response = templates.TemplateResponse(request, name, {
        "title": title, "lang": lang, "t": t, "principal": _principal(request),
        "flash": context.pop("flash", None), **context}, status_code=status_code)
    if "lang" in request.query_params:
        response.set_cookie("lang", lang, samesite="lax")
    return response


class SignInNeeded(Exception):
    """Raised by ``signed_in``; the app turns it into a redirect to /login."""


def signed_in(request: Request) -> Principal:
    principal = _principal(request)
    if principal is None:
        raise SignInNeeded
    return principal


def _overdue(due: str) -> bool:
    return datetime.fromisoformat(due) < datetime.now().astimezone()


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request) -> HTMLResponse:
    return page(request, "login.html", "登录 / Sign in")


@router.post("/login")
def login(request: Request, token: str = Form(...)) -> Response:
    if principal_for(_settings(request), token) is None:
        return page(request, "login.html", "登录 / Sign in", 401,
                    flash="令牌无效 / invalid token")
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(COOKIE, token, httponly=True, samesite="lax")
    return response


@router.post("/login/link")
def login_link(request: Request, email: str = Form(...)) -> HTMLResponse:
    settings = _settings(request)
    party = next((p for p in list_parties(settings) if p.email == email.strip()), None)
    if party is not None:
        code = secrets.token_urlsafe(24)
        request.app.state.login_codes[code] = (party.id, time.monotonic() + LINK_LIFETIME_S)
        link = f"{settings.base_url.rstrip('/')}/login/link/{code}"
        try:
            send(settings, Mail((party.email,), "[会签] 登录链接 / sign-in link",
                                f"点击登录（15 分钟内有效，仅可使用一次）：\n"
                                f"Sign in (valid 15 minutes, once):\n{link}\n"))
        except MailFailed:
            pass
    # The same answer whether or not the address is known: no one learns who is registered.
    return page(request, "login.html", "登录 / Sign in",
                flash="如果该邮箱已登记，登录链接已发出 / if the address is registered, a "
                      "sign-in link is on its way")


@router.get("/login/link/{code}")
def login_with_link(request: Request, code: str) -> Response:
    entry = request.app.state.login_codes.pop(code, None)
    if entry is None or entry[1] < time.monotonic():
        return page(request, "login.html", "登录 / Sign in", 401,
                    flash="链接无效或已过期 / the link is invalid or has expired")
    token = create_token(_settings(request), "party", entry[0], label="web sign-in")
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(COOKIE, token, httponly=True, samesite="lax")
    return response


@router.get("/logout")
def logout() -> Response:
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE)
    return response


def _summaries(reports: list[dict]) -> list[dict]:
    out = []
    for report in reports:
        template = get_template(report["template"])
        out.append({**report, "title": template.title_zh,
                    "next": [{**n, "overdue": _overdue(n["due"])} for n in report["next"]]})
    return out


@router.get("/", response_class=HTMLResponse)
def home(request: Request, principal: Principal = Depends(signed_in)) -> HTMLResponse:
    settings = _settings(request)
    party = principal.party if principal.role == "party" else None
    documents = _summaries(blocking_documents(settings, party=party))
    waiting = None
    if party:
        waiting = [{"id": d["id"], "number": d["number"], "title": d["title"],
                    "due": n["due"], "overdue": n["overdue"]}
                   for d in documents for n in d["next"] if n["party"] == party]
        waiting.sort(key=lambda item: item["due"])
    return page(request, "home.html", "会签 / Countersign", documents=documents,
                waiting=waiting)


def _document_page(request: Request, principal: Principal, document_id: str,
                   flash: str | None = None, status_code: int = 200) -> HTMLResponse:
    settings = _settings(request)
    state = load_state(settings, document_id)
    if not principal.may_see(state):
        return page(request, "home.html", "404", 404, documents=[], waiting=None,
                    flash=f"未知文档 / unknown document {document_id}")
    report = document_status(settings, document_id)
    report["next"] = [{**n, "overdue": _overdue(n["due"])} for n in report["next"]]
    template = get_template(state.template)
    actions = []
    if principal.party and any(n["party"] == principal.party for n in report["next"]):
        actions.append("sign")
    if principal.role == "admin" and report["status"] == "completed" and not report["blocking"]:
        actions.append("close")
    involved = principal.role == "admin" or (principal.party and principal.may_see(state))
    open_doc = report["status"] not in ("closed", "voided")
    if involved and open_doc and "progress_updates" in template.field_names:
        actions.append("progress")
    open_items = [(n, item) for n, item in enumerate(state.form.get("action_items") or [], 1)
                  if n not in state.action_items_done]
    if involved and open_doc and open_items:
        actions.append("actions")
    events = [{**e, "at": datetime.fromisoformat(e["at"]).astimezone(settings.zone)
                .isoformat(timespec="seconds")} for e in document_events(settings, document_id)]
    return page(request, "document.html", report["number"], status_code, s=report,
                title_zh=template.title_zh, title_en=template.title_en,
                events=events, actions=actions, open_items=open_items,
                pages=range(1, page_count(settings, document_id) + 1), flash=flash)


@router.get("/documents/{document_id}", response_class=HTMLResponse)
def document(request: Request, document_id: str,
             principal: Principal = Depends(signed_in)) -> HTMLResponse:
    return _document_page(request, principal, document_id)


def _visible(request: Request, principal: Principal, document_id: str) -> None:
    if not principal.may_see(load_state(_settings(request), document_id)):
        raise BadInput("未知文档", f"unknown document {document_id!r}")


@router.get("/documents/{document_id}/pdf")
def document_pdf(request: Request, document_id: str,
                 principal: Principal = Depends(signed_in)) -> Response:
    _visible(request, principal, document_id)
    return Response(download_revision(_settings(request), document_id),
                    media_type="application/pdf")


@router.get("/documents/{document_id}/pages/{number}.png")
def document_page_image(request: Request, document_id: str, number: int,
                        principal: Principal = Depends(signed_in)) -> Response:
    _visible(request, principal, document_id)
    return Response(page_preview(_settings(request), document_id, number),
                    media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})


async def _act(request: Request, principal: Principal, document_id: str, done: str,
               function, *args) -> Response:
    try:
        await run_in_threadpool(function, *args)
    except KNOWN_ERRORS as exc:
        return await run_in_threadpool(_document_page, request, principal, document_id,
                                       str(exc), 400)
    return RedirectResponse(f"/documents/{document_id}?done={done}", status_code=303)


@router.post("/documents/{document_id}/sign")
async def web_sign(request: Request, document_id: str, passphrase: str = Form(...),
                   revision: str = Form(""), principal: Principal = Depends(signed_in)
                   ) -> Response:
    try:
        await in_signer_process(request.app, sign_document, _settings(request), document_id,
                                principal.party or "", passphrase, revision or None)
    except KNOWN_ERRORS as exc:
        return await run_in_threadpool(_document_page, request, principal, document_id,
                                       str(exc), 400)
    return RedirectResponse(f"/documents/{document_id}?done=signed", status_code=303)


@router.post("/documents/{document_id}/upload")
async def web_upload(request: Request, document_id: str, file: UploadFile = File(...),
                     principal: Principal = Depends(signed_in)) -> Response:
    data = await file.read(MAX_UPLOAD_BYTES + 1)
    if len(data) > MAX_UPLOAD_BYTES:
        exc = UploadRejected("文件过大", f"the file is too large (limit {MAX_UPLOAD_BYTES})")
        return await run_in_threadpool(_document_page, request, principal, document_id,
                                       str(exc), 413)
    return await _act(request, principal, document_id, "uploaded", upload_countersigned,
                      _settings(request), document_id, principal.party or "", data)


@router.post("/documents/{document_id}/decline")
async def web_decline(request: Request, document_id: str, reason: str = Form(...),
                      principal: Principal = Depends(signed_in)) -> Response:
    return await _act(request, principal, document_id, "declined", decline_document,
                      _settings(request), document_id, principal.party or "", reason)


@router.post("/documents/{document_id}/close")
async def web_close(request: Request, document_id: str,
                    principal: Principal = Depends(signed_in)) -> Response:
    if principal.role != "admin":
        return await run_in_threadpool(_document_page, request, principal, document_id,
                                       "只有管理员可以关闭 / only an admin may close", 403)
    pool = await run_in_threadpool(pool_of, request)
    return await _act(request, principal, document_id, "closed", close_document,
                      _settings(request), document_id, pool, f"admin:{principal.label}")


@router.post("/documents/{document_id}/progress")
async def web_progress(request: Request, document_id: str, date: str = Form(...),
                       text: str = Form(...), principal: Principal = Depends(signed_in)
                       ) -> Response:
    _visible(request, principal, document_id)
    pool = await run_in_threadpool(pool_of, request)
    return await _act(request, principal, document_id, "progress", add_progress_entry,
                      _settings(request), document_id, date, text,
                      principal.party or f"admin:{principal.label}", pool,
                      principal.role == "admin")


@router.post("/documents/{document_id}/action-done")
async def web_action_done(request: Request, document_id: str, item: int = Form(...),
                          principal: Principal = Depends(signed_in)) -> Response:
    _visible(request, principal, document_id)
    return await _act(request, principal, document_id, "action", mark_action_item_done,
                      _settings(request), document_id, item,
                      principal.party or f"admin:{principal.label}", principal.role == "admin")


def _readers_only(principal: Principal) -> None:
    if principal.role not in ("admin", "auditor"):
        raise BadInput("只有管理员和审计员可以查看复盘", "the review is for admins and auditors")


@router.get("/report", response_class=HTMLResponse)
def report_page(request: Request, since: str = "", until: str = "",
                principal: Principal = Depends(signed_in)) -> HTMLResponse:
    _readers_only(principal)
    today = datetime.now(_settings(request).zone).date()
    since = since or today.replace(day=1).isoformat()
    until = until or today.isoformat()
    return page(request, "report.html", "复盘 / Review", since=since, until=until,
                report=review(_settings(request), since, until))


@router.get("/report/chart.png")
def report_chart(request: Request, since: str, until: str,
                 principal: Principal = Depends(signed_in)) -> Response:
    _readers_only(principal)
    return Response(review_chart(review(_settings(request), since, until)),
                    media_type="image/png")


@router.get("/templates", response_class=HTMLResponse)
def choose_template(request: Request, principal: Principal = Depends(signed_in)
                    ) -> HTMLResponse:
    return page(request, "templates.html", "新建文档 / New document",
                templates=list_templates())


def form_to_data(template, form) -> dict[str, Any]:
    """Return form data as the template's JSON: lists one per line, table rows and objects
    as ``a | b | c`` lines, empty fields left out (validation names what is missing)."""
    data: dict[str, Any] = {}
    for spec in template.fields:
        raw = (form.get(spec.name) or "").replace("\r\n", "\n")
        if not raw.strip():
            continue
        if spec.type == "list":
            data[spec.name] = [line.strip() for line in raw.split("\n") if line.strip()]
        elif spec.type in ("table", "object"):
            rows = []
            for line in (text for text in raw.split("\n") if text.strip()):
                cells = [c.strip() for c in line.split("|")]
                rows.append({col.name: cell for col, cell in zip(spec.columns, cells,
                                                                 strict=False) if cell})
            data[spec.name] = rows if spec.type == "table" else (rows[0] if rows else {})
        else:
            data[spec.name] = raw if spec.type == "multiline" else raw.strip()
    return data


@router.get("/templates/{key}/new", response_class=HTMLResponse)
def new_document_form(request: Request, key: str, principal: Principal = Depends(signed_in)
                      ) -> HTMLResponse:
    return page(request, "new.html", get_template(key).title_zh, template=get_template(key),
                parties=list_parties(_settings(request)), values={}, problems=[],
                hints=TYPE_HINTS)


@router.post("/templates/{key}/new")
async def new_document(request: Request, key: str, principal: Principal = Depends(signed_in)
                       ) -> Response:
    template = get_template(key)
    form = await request.form()
    data = form_to_data(template, form)
    bindings = [(role.key, party) for role in template.roles
                for party in form.getlist(f"role:{role.key}")]
    try:
        pool = await run_in_threadpool(pool_of, request)
        report = await run_in_threadpool(create_document, _settings(request), key, data,
                                         bindings, pool,
                                         principal.party or f"admin:{principal.label}")
    except ValidationFailed as exc:
        return page(request, "new.html", template.title_zh, 422, template=template,
                    parties=list_parties(_settings(request)), values=dict(form),
                    problems=[str(p) for p in exc.problems], hints=TYPE_HINTS)
    except KNOWN_ERRORS as exc:
        return page(request, "new.html", template.title_zh, 400, template=template,
                    parties=list_parties(_settings(request)), values=dict(form),
                    problems=[str(exc)], hints=TYPE_HINTS)
    return RedirectResponse(f"/documents/{report['id']}", status_code=303)


@router.get("/verify", response_class=HTMLResponse)
def verify_form(request: Request) -> HTMLResponse:
    return page(request, "verify.html", "验证 / Verify", report=None)


@router.post("/verify", response_class=HTMLResponse)
async def verify_upload(request: Request, file: UploadFile = File(...)) -> HTMLResponse:
    data = await file.read(MAX_UPLOAD_BYTES + 1)
    if len(data) > MAX_UPLOAD_BYTES:
        return page(request, "verify.html", "验证 / Verify", 413, report=None,
                    flash="文件过大 / the file is too large")
    report = await run_in_threadpool(verify_bytes, _settings(request), data)
    return page(request, "verify.html", "验证 / Verify", report=report)
