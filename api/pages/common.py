"""What every page shares: the templates, sign-in by cookie, and the policy's answers turned
into pages (a refusal is an HTML page, not JSON)."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

from api.deps import OnDocument, settings_of
from api.pages import labels
from pipeline.documents.notify import unsent_notices
from pipeline.errors import Forbidden, UnknownDocument
from pipeline.people.access import Principal, Role, principal_for
from pipeline.people.parties import list_parties
from pipeline.people.policy import Action, authorize, may, require

COOKIE = "countersign_token"
templates = Jinja2Templates(directory=str(Path(__file__).resolve().parent.parent / "templates"))


def language(request: Request) -> str:
    return request.query_params.get("lang") or request.cookies.get("lang") or "zh"


def principal_of(request: Request) -> Principal | None:
    """Return who the sign-in cookie names, or None."""
    token = request.cookies.get(COOKIE)
    return principal_for(settings_of(request), token) if token else None


def page(request: Request, name: str, title: str, status_code: int = 200,
         **context: Any) -> HTMLResponse:
    """Return the page ``name`` rendered in the visitor's language (``?lang=`` sticks)."""
    lang = language(request)
    principal = principal_of(request)

    def t(zh: str, en: str) -> str:
        return en if lang == "en" else zh

    def can(action: str) -> bool:
        return principal is not None and may(principal, Action(action))

    settings = settings_of(request)
    people = {party.id: party for party in list_parties(settings)}

    def person(party_id: str) -> str:
        """李娜（产品部）for a party, 管理员 for an administrator, the id otherwise."""
        if party_id in people:
            return f"{people[party_id].name}（{people[party_id].dept}）"
        if party_id.startswith("admin:"):
            return t("管理员", "administrator") + f" {party_id[6:]}"
        return {"system": t("系统", "system"), "follow-up": t("跟进", "follow-up"),
                "cli": t("命令行", "command line")}.get(party_id, party_id)

    done = labels.DONE.get(request.query_params.get("done", ""))
    mail_failing = (principal is not None and principal.role is Role.ADMIN
                    and unsent_notices(settings))
    response = templates.TemplateResponse(request, name, {
        "title": title, "lang": lang, "t": t, "can": can, "principal": principal,
        "person": person, "people": people,
        "status_label": lambda s: labels.status_label(s, lang),
        "event_label": lambda k: labels.event_label(k, lang),
        "role_label": lambda key, role: labels.role_label(key, role, lang),
        "when": lambda value, seconds=False: labels.when(value, settings.zone, seconds),
        "flash": context.pop("flash", None),
        "notice": labels.pick(done, lang) if done else None,
        "mail_failing": mail_failing, **context}, status_code=status_code)
    if "lang" in request.query_params:
        response.set_cookie("lang", lang, samesite="lax")
    return response


class SignInNeeded(Exception):
    """Raised by ``signed_in``; the app turns it into a redirect to /login."""


async def sign_in_first(request: Request, _: Exception) -> RedirectResponse:
    """Send the visitor to sign in, and back to the page it asked for afterwards (the mail
    link of a document to sign)."""
    wanted = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?{urlencode({'next': wanted})}", status_code=303)


def local_path(target: str | None) -> str:
    """Return ``target`` if it is a path on this site, else the start page."""
    if target and target.startswith("/") and not target.startswith("//") \
            and "\\" not in target:
        return target
    return "/"


def signed_in(request: Request) -> Principal:
    """Return the signed-in principal; without one, the visitor is sent to /login."""
    principal = principal_of(request)
    if principal is None:
        raise SignInNeeded
    return principal


class PageRefused(Exception):
    """A page the visitor may not have: 404 (no such document, or one it may not see) or
    403 (its role may not); shown as a page with the reason."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


async def refused_page(request: Request, error: Exception) -> HTMLResponse:
    assert isinstance(error, PageRefused)
    return page(request, "error.html", str(error.status), error.status, flash=error.message)


def refusal(error: Forbidden | UnknownDocument) -> PageRefused:
    return PageRefused(404 if isinstance(error, UnknownDocument) else 403, str(error))


def permitted(action: Action):
    """Return a dependency answering the signed-in principal if it may take ``action``."""
    def check(principal: Principal = Depends(signed_in)) -> Principal:
        try:
            require(principal, action)
        except Forbidden as exc:
            raise refusal(exc) from None
        return principal
    return Depends(check)


def on_document(action: Action):
    """Return a dependency answering the principal and the document of the path if it may
    take ``action`` on it: the same 404 page for a hidden document as for a missing one."""
    def check(request: Request, document_id: str,
              principal: Principal = Depends(signed_in)) -> OnDocument:
        try:
            state = authorize(settings_of(request), principal, action, document_id)
        except (Forbidden, UnknownDocument) as exc:
            raise refusal(exc) from None
        assert state is not None
        return OnDocument(principal, state)
    return Depends(check)
