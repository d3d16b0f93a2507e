"""What every page shares: the templates, sign-in by cookie, and the policy's answers turned
into pages (a refusal is an HTML page, not JSON)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

from api.deps import OnDocument, settings_of
from pipeline.errors import Forbidden, UnknownDocument
from pipeline.people.access import Principal, principal_for
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

    response = templates.TemplateResponse(request, name, {
        "title": title, "lang": lang, "t": t, "can": can, "principal": principal,
        "flash": context.pop("flash", None), **context}, status_code=status_code)
    if "lang" in request.query_params:
        response.set_cookie("lang", lang, samesite="lax")
    return response


class SignInNeeded(Exception):
    """Raised by ``signed_in``; the app turns it into a redirect to /login."""


async def sign_in_first(request: Request, _: Exception) -> RedirectResponse:
    return RedirectResponse("/login", status_code=303)


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
