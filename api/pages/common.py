"""What every page shares: the templates, the server-side session behind the sign-in
cookie, CSRF protection of every form, and the policy's answers turned into pages (a refusal
is an HTML page, not JSON).

The session cookie holds only the session's random id (HttpOnly, SameSite=Lax, Secure when
the service is reached over HTTPS). Every state-changing form carries a CSRF token — the
session's secret, or before sign-in a random value also set as a cookie (double submit) —
and a request whose Origin (or, lacking one, Referer) names another site is refused before
the token is even looked at.
"""

from __future__ import annotations

import json
import re
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from markupsafe import Markup, escape

from api.deps import OnDocument, settings_of
from api.pages import labels
from pipeline.documents.notify import undelivered_mail
from pipeline.errors import Forbidden, UnknownDocument
from pipeline.people.access import Principal, Role, Session, csrf_matches, session_for
from pipeline.people.parties import list_parties
from pipeline.people.policy import Action, authorize, may, require

COOKIE = "countersign_session"
CSRF_COOKIE = "countersign_csrf"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
templates = Jinja2Templates(directory=str(Path(__file__).resolve().parent.parent / "templates"))


def language(request: Request) -> str:
    return request.query_params.get("lang") or request.cookies.get("lang") or "zh"


def session_of(request: Request) -> Session | None:
    """Return the session the cookie names if it is still good (looked up once a request)."""
    if not hasattr(request.state, "session"):
        request.state.session = session_for(settings_of(request),
                                            request.cookies.get(COOKIE, ""))
    return request.state.session


def principal_of(request: Request) -> Principal | None:
    """Return who is signed in, or None."""
    session = session_of(request)
    return session.principal if session else None


def over_https(request: Request) -> bool:
    """Return True when the visitor reached the service over HTTPS (directly, behind a
    trusted proxy, or as the configured base URL says)."""
    return (request.url.scheme == "https"
            or settings_of(request).base_url.lower().startswith("https://"))


def set_session_cookie(response: Response, request: Request, session: Session) -> Response:
    """Put ``session``'s id in the sign-in cookie of ``response``."""
    settings = settings_of(request)
    response.set_cookie(COOKIE, session.id, max_age=int(settings.session_hours * 3600),
                        httponly=True, samesite="lax", secure=over_https(request), path="/")
    return response


def csrf_token(request: Request) -> str:
    """Return the CSRF token this visitor's forms carry: the session's, or before sign-in
    the double-submit cookie's (made now if the visitor has none)."""
    session = session_of(request)
    if session is not None:
        return session.csrf
    if not hasattr(request.state, "csrf_cookie"):
        request.state.csrf_cookie = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(32)
    return request.state.csrf_cookie


def _own_origins(request: Request) -> set[str]:
    host = request.headers.get("host", "")
    base = urlsplit(settings_of(request).base_url)
    return {f"{request.url.scheme}://{host}".lower(), f"{base.scheme}://{base.netloc}".lower()}


def cross_site(request: Request) -> bool:
    """Return True when Origin (or, lacking one, Referer) names a site other than this one."""
    origin = request.headers.get("origin")
    if origin is None and request.headers.get("referer"):
        parts = urlsplit(request.headers["referer"])
        origin = f"{parts.scheme}://{parts.netloc}"
    return origin is not None and origin.lower() not in _own_origins(request)


async def csrf_checked(request: Request) -> None:
    """Refuse (403) a state-changing request from another site or without this visitor's
    CSRF token. Every page route depends on it; safe methods pass."""
    if request.method in SAFE_METHODS:
        return
    if cross_site(request):
        raise PageRefused(403, "跨站请求被拒绝 / cross-site request refused")
    presented = (await request.form()).get(CSRF_FIELD)
    session = session_of(request)
    anonymous = request.cookies.get(CSRF_COOKIE)
    if not isinstance(presented, str) or not (
            (session is not None and csrf_matches(session, presented))
            or (anonymous and secrets.compare_digest(anonymous, presented))):
        raise PageRefused(403, "表单已过期或来源不明，请刷新页面后重试 / the form is stale or "
                               "did not come from this site: reload the page and try again")


def page(request: Request, name: str, title: str, status_code: int = 200,
         **context: Any) -> HTMLResponse:
    """Return the page ``name`` rendered in the visitor's language (``?lang=`` sticks)."""
    lang = language(request)
    principal = principal_of(request)

    def t(zh: str, en: str) -> str:
        return en if lang == "en" else zh

    def can(action: str) -> bool:
        return principal is not None and may(principal, Action(action))

    token = csrf_token(request)

    def csrf_field() -> Markup:
        return Markup(f'<input type="hidden" name="{CSRF_FIELD}" value="{escape(token)}">')

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

    def named(text: str) -> str:
        """``text`` (a blocking reason) with each party id in it replaced by the name."""
        return re.sub(r"(?<![\w.-])([a-z0-9][a-z0-9._-]*)(?![\w.-])",
                      lambda m: people[m.group(1)].name if m.group(1) in people
                      else m.group(1), text)

    done = labels.DONE.get(request.query_params.get("done", ""))
    mail_failing = (principal is not None and principal.role is Role.ADMIN
                    and undelivered_mail(settings))
    response = templates.TemplateResponse(request, name, {
        "title": title, "lang": lang, "t": t, "can": can, "principal": principal,
        "csrf_field": csrf_field, "person": person, "named": named,
        "people": people if principal is not None and may(principal, Action.LIST_PARTIES)
        else {},
        "status_label": lambda s: labels.status_label(s, lang),
        "event_label": lambda k: labels.event_label(k, lang),
        "role_label": lambda key, role: labels.role_label(key, role, lang),
        "when": lambda value, seconds=False: labels.when(value, settings.zone, seconds),
        "flash": context.pop("flash", None),
        "notice": labels.pick(done, lang) if done else None,
        "mail_failing": mail_failing, **context}, status_code=status_code)
    if "lang" in request.query_params:
        response.set_cookie("lang", lang, samesite="lax")
    if principal is None and request.cookies.get(CSRF_COOKIE) != token:
        response.set_cookie(CSRF_COOKIE, token, httponly=True, samesite="strict",
                            secure=over_https(request), path="/")
    return response


class SignInNeeded(Exception):
    """Raised by ``signed_in``; the app turns it into a redirect to /login."""


async def sign_in_first(request: Request, _: Exception) -> RedirectResponse:
    # Back to the page asked for after signing in (a signer arriving from its mail link).
    wanted = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if wanted == "/":
        return RedirectResponse("/login", status_code=303)
    return RedirectResponse(f"/login?{urlencode({'next': wanted})}", status_code=303)


def local_path(value: str | None) -> str:
    """Return ``value`` if it is a path on this site (never another host), else ``/``."""
    if (not value or not value.startswith("/") or value.startswith(("//", "/\\"))
            or any(ord(c) < 32 for c in value)):
        return "/"
    return value


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


#: Paths that answer JSON whatever happens: the REST API and the OpenAPI documents.
JSON_PATHS = ("/api/", "/openapi.json")


def as_page(json_handler):
    """Return an exception handler that answers like ``json_handler`` on the API and with
    an HTML page (the same message and status) everywhere else: a browser never gets JSON."""
    async def handle(request: Request, error: Exception):
        response = await json_handler(request, error)
        if request.url.path.startswith(JSON_PATHS):
            return response
        body = json.loads(response.body)
        lines = [body.get("message", "")] + [
            f"{item.get('field')}: {item.get('zh')}" for item in body.get("problems", [])]
        try:
            return page(request, "error.html", str(response.status_code),
                        response.status_code, flash="\n".join(filter(None, lines)))
        except Exception:  # noqa: BLE001 - a page that cannot render falls back to JSON
            return response
    return handle


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
