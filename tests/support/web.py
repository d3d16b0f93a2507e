"""Posting the web pages' forms from a TestClient as a browser would: with the CSRF token the
page carries (the session's once signed in, the double-submit cookie's before)."""

from __future__ import annotations

import re

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
SESSION_COOKIE = "countersign_session"


def csrf_of(client, page: str | None = None) -> str:
    """Return the CSRF token of the forms on ``page`` (default: the start page when signed
    in, the sign-in page before)."""
    page = page or ("/" if client.cookies.get(SESSION_COOKIE) else "/login")
    return CSRF.search(client.get(page).text).group(1)


def post_form(client, path: str, data: dict | None = None, *, page: str | None = None,
              **kwargs):
    """POST ``data`` to ``path`` with the CSRF token a page of the site gives."""
    return client.post(path, data={**(data or {}), "csrf_token": csrf_of(client, page)},
                       **kwargs)


def sign_in(client, token: str) -> None:
    """Sign ``client`` in with an access token, as the sign-in form does."""
    response = post_form(client, "/login", {"token": token}, follow_redirects=False)
    assert response.status_code == 303, response.text
