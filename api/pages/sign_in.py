"""Signing in: with an access token, or with a one-time link sent by e-mail; signing out."""

from __future__ import annotations

import secrets
import time

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from api.deps import settings_of
from api.pages.common import COOKIE, page
from pipeline.outbound.mail import Mail, MailFailed, send
from pipeline.people.access import Role, create_token, principal_for
from pipeline.people.parties import list_parties

LINK_LIFETIME_S = 15 * 60
router = APIRouter()


def _signed_in_as(token: str) -> Response:
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(COOKIE, token, httponly=True, samesite="lax")
    return response


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request) -> HTMLResponse:
    return page(request, "login.html", "登录 / Sign in")


@router.post("/login")
def login(request: Request, token: str = Form(...)) -> Response:
    if principal_for(settings_of(request), token) is None:
        return page(request, "login.html", "登录 / Sign in", 401,
                    flash="令牌无效 / invalid token")
    return _signed_in_as(token)


@router.post("/login/link")
def login_link(request: Request, email: str = Form(...)) -> HTMLResponse:
    settings = settings_of(request)
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
    return _signed_in_as(create_token(settings_of(request), Role.PARTY, entry[0],
                                      label="web sign-in"))


@router.get("/logout")
def logout() -> Response:
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE)
    return response
