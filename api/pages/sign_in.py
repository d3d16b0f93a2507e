"""Signing in: with an access token, or with a one-time link sent by e-mail; signing out.

Each sign-in opens a server-side session (``pipeline.people.access``); the cookie holds only
its id. Token guesses are throttled per client; link requests are rate-limited per client
and per address, and answered the same way, at the same speed, whether or not the address
is registered (the lookup and the mail happen after the answer). A link opens a page whose
button signs in — a mail scanner fetching the link, or a page of another site pointing at
it, signs no one in. Signing out revokes the session on the server; ``GET /logout`` only
asks to confirm.
"""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, BackgroundTasks, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from api.deps import settings_of
from api.gate import RateLimited, client_of
from api.pages.common import COOKIE, local_path, page, session_of, set_session_cookie
from pipeline.config import Settings
from pipeline.outbound.mail import Mail
from pipeline.outbound.outbox import deliver_mail, queue_mail
from pipeline.people.access import (
    LINK_LIFETIME,
    Session,
    close_session,
    create_login_code,
    sign_in_with_code,
    sign_in_with_token,
)
from pipeline.people.throttle import TooManyAttempts

router = APIRouter()
LINK_SENT = ("如果该邮箱已登记，登录链接已发出 / if the address is registered, a sign-in link "
             "is on its way")


def _signed_in(request: Request, session: Session, wanted: str | None = None) -> Response:
    return set_session_cookie(RedirectResponse(local_path(wanted), status_code=303), request,
                              session)


def _login_page(request: Request, status: int = 200, flash: str | None = None,
                wanted: str | None = None) -> HTMLResponse:
    return page(request, "login.html", "登录 / Sign in", status, flash=flash,
                next=local_path(wanted or request.query_params.get("next")))


def _too_many(request: Request, exc: TooManyAttempts | RateLimited) -> HTMLResponse:
    response = _login_page(request, 429, str(exc))
    response.headers["Retry-After"] = str(exc.retry_after)
    return response


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request) -> HTMLResponse:
    return _login_page(request)


@router.post("/login")
def login(request: Request, token: str = Form(...), next: str = Form("/")) -> Response:
    try:
        session = sign_in_with_token(settings_of(request), token, client_of(request))
    except TooManyAttempts as exc:
        return _too_many(request, exc)
    if session is None:
        return _login_page(request, 401, "令牌无效 / invalid token", wanted=next)
    return _signed_in(request, session, next)


def _send_link(settings: Settings, email: str, wanted: str = "/") -> None:
    """Mail a sign-in link if ``email`` is registered (runs after the answer was sent)."""
    found = create_login_code(settings, email)
    if found is None:
        return
    party, code = found
    link = f"{settings.base_url.rstrip('/')}/login/link/{code}"
    if local_path(wanted) != "/":
        link += f"?{urlencode({'next': local_path(wanted)})}"
    minutes = int(LINK_LIFETIME.total_seconds() // 60)
    queue_mail(settings, [Mail((email.strip(),), "[会签] 登录链接 / sign-in link",
                               f"点击登录（{minutes} 分钟内有效，仅可使用一次）：\n"
                               f"Sign in (valid {minutes} minutes, once):\n{link}\n")])
    deliver_mail(settings)


@router.post("/login/link")
async def login_link(request: Request, background: BackgroundTasks,
                     email: str = Form(...), next: str = Form("/")) -> HTMLResponse:
    gate = request.app.state.link_gate
    try:
        gate.hit(client_of(request))
        gate.hit(f"address:{email.strip().lower()}")
    except RateLimited as exc:
        return _too_many(request, exc)
    background.add_task(_send_link, settings_of(request), email, next)  # in a worker thread
    return _login_page(request, flash=LINK_SENT, wanted=next)


@router.get("/login/link/{code}", response_class=HTMLResponse)
def confirm_link(request: Request, code: str) -> HTMLResponse:
    wanted = local_path(request.query_params.get("next"))
    action = f"/login/link/{code}" + (f"?{urlencode({'next': wanted})}" if wanted != "/" else "")
    return page(request, "confirm.html", "登录 / Sign in", action=action,
                question="使用此一次性链接登录？ / Sign in with this one-time link?",
                button="登录 / Sign in")


@router.post("/login/link/{code}")
def login_with_link(request: Request, code: str) -> Response:
    try:
        session = sign_in_with_code(settings_of(request), code, client_of(request))
    except TooManyAttempts as exc:
        return _too_many(request, exc)
    if session is None:
        return _login_page(request, 401, "链接无效或已过期 / the link is invalid or has expired")
    return _signed_in(request, session, request.query_params.get("next"))


@router.get("/logout", response_class=HTMLResponse)
def confirm_logout(request: Request) -> Response:
    if session_of(request) is None:
        return RedirectResponse("/login", status_code=303)
    return page(request, "confirm.html", "退出 / Sign out", action="/logout",
                question="退出登录？ / Sign out?", button="退出 / Sign out")


@router.post("/logout")
def logout(request: Request) -> Response:
    session = session_of(request)
    if session is not None:
        close_session(settings_of(request), session.id)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response
