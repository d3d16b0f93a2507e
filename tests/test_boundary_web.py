"""The access boundary, attacked over HTTP as issue 11's findings were (no LibreOffice:
the service runs without its conversion pool, and documents are made from a blank page)."""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlencode

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.workers import signer_processes
from pipeline.config import Settings
from pipeline.documents.create import request_scope
from pipeline.outbound.webhooks import WebhookSecretMissing
from pipeline.people.access import create_token
from pipeline.people.setup import initialise
from pipeline.people.throttle import FREE_FAILURES
from pipeline.record import database
from tests.support.documents import event_kinds, quick_document
from tests.support.forms import example
from tests.support.hostile import signed_blank, with_empty_updates
from tests.support.net import free_port
from tests.support.web import csrf_of, post_form, sign_in

TEMPLATES = Path(__file__).resolve().parent.parent / "api" / "templates"


@pytest.fixture(scope="module")
def settings(tmp_path_factory) -> Settings:
    settings = Settings(data_dir=tmp_path_factory.mktemp("boundary-web") / "data",
                        background_interval_s=0, smtp_port=free_port(), verify_workers=1,
                        verify_rate="4/minute", max_upload_bytes=256 * 1024,
                        max_json_bytes=64 * 1024)
    initialise(settings)
    return settings


@pytest.fixture(scope="module")
def app(settings):
    import threading

    app = create_app(settings)
    # No LibreOffice here: these attacks are refused before anything would be converted.
    app.state.pool, app.state.pool_started = None, threading.Thread(target=lambda: None)
    app.state.pool_started.start()
    yield app
    app.state.verifier.close()


@pytest.fixture
def client(app):
    """A client of the service without its lifespan (no LibreOffice pool)."""
    with_client = TestClient(app)
    yield with_client
    with_client.cookies.clear()


def bearer(settings: Settings, role: str, party: str | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {create_token(settings, role, party)}"}


# --- finding 1: unauthenticated CPU exhaustion ----------------------------------------------


def test_a_hostile_pdf_is_answered_from_its_budget(settings, client):
    hostile = with_empty_updates(signed_blank(settings), 1000)
    response = client.post("/api/verify", content=hostile,
                           headers=bearer(settings, "auditor"))
    assert response.status_code == 200
    verdict = response.json()
    assert not verdict["valid"] and "too many revisions" in verdict["problems"][0]


def test_a_verify_flood_from_one_client_is_rate_limited(settings, client):
    sign_in(client, create_token(settings, "party", "lina"))
    pdf = signed_blank(settings)
    codes = []
    for _ in range(6):
        response = post_form(client, "/verify", files={"file": ("a.pdf", pdf)}, page="/verify")
        codes.append(response.status_code)
    assert codes[:4] == [200] * 4 and codes[4:] == [429, 429]
    assert int(response.headers["Retry-After"]) >= 1


async def _stream(app, path: str, headers: dict[str, str], chunks) -> tuple[int, int]:
    """POST ``chunks`` to ``app`` one ASGI message at a time, as a slow client would, with no
    Content-Length; return (status, how many chunks the service pulled before answering)."""
    pulled, status = 0, []
    chunks = list(chunks)

    async def receive():
        nonlocal pulled
        if pulled < len(chunks):
            pulled += 1
            return {"type": "http.request", "body": chunks[pulled - 1],
                    "more_body": pulled < len(chunks)}
        return {"type": "http.disconnect"}

    async def send(message):
        if message["type"] == "http.response.start":
            status.append(message["status"])

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "POST", "scheme": "http", "path": path, "raw_path": path.encode(),
             "query_string": b"", "root_path": "", "client": ("127.0.0.1", 50000),
             "server": ("testserver", 80),
             "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()]}
    await app(scope, receive, send)
    return status[0], pulled


def test_an_oversized_multipart_upload_is_cut_off_while_streaming(settings, app, client):
    import asyncio

    sign_in(client, create_token(settings, "party", "lina"))
    token = csrf_of(client, "/verify")
    boundary = "XyZ"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"csrf_token\"\r\n\r\n"
            f"{token}\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"big.pdf\"\r\nContent-Type: application/pdf\r\n\r\n%PDF-").encode()
    chunks = [head, *[b"\0" * 65536] * 64, f"\r\n--{boundary}--\r\n".encode()]  # 4 MB
    status, pulled = asyncio.run(_stream(app, "/verify", {
        "content-type": f"multipart/form-data; boundary={boundary}", "host": "testserver",
        "cookie": f"countersign_session={client.cookies.get('countersign_session')}"},
        chunks))
    assert status == 413
    # Cut off just past the 256 KB limit (plus the form's slack), not after reading 4 MB.
    assert pulled <= (256 + 64) // 64 + 2


def test_a_huge_json_body_is_refused_before_it_is_parsed(settings, client):
    headers = bearer(settings, "admin")
    huge = b'{"template": "requirement_confirmation", "data": {"x": "' + b"a" * 200_000 + b'"}}'
    declared = client.post("/api/documents", content=huge,
                           headers={**headers, "Content-Type": "application/json"})
    assert declared.status_code == 413 and declared.json()["code"] == "too_large"
    streamed = client.post("/api/documents", content=iter([huge[:50_000]] * 4),
                           headers={**headers, "Content-Type": "application/json"})
    assert streamed.status_code == 413


# --- finding 3: request_key IDOR ------------------------------------------------------------


def test_another_callers_request_key_reveals_nothing_over_http(settings, client):
    victims = quick_document(settings, creator="zhangwei",
                             request_key=request_scope("zhangwei", "board-2024-06"))
    response = client.post("/api/documents", headers=bearer(settings, "party", "wangqiang"),
                           json={"template": "requirement_confirmation", "data": {},
                                 "parties": [], "request_key": "board-2024-06"})
    assert response.status_code == 422  # its own (empty) request, validated — not the victim's
    assert victims not in response.text and "lina" not in response.text


# --- finding 4: U+2028 in a one-line field ---------------------------------------------------


def test_a_line_separator_in_a_department_is_a_422_and_nothing_is_recorded(settings, client):
    form = example("requirement_confirmation")
    form["requester"]["dept"] = "市场\u2028部"
    with database.connection(settings.database) as conn:
        before = database.highest_event_seq(conn)
    response = client.post("/api/documents", headers=bearer(settings, "admin"), json={
        "template": "requirement_confirmation", "data": form,
        "parties": [{"role": "requester", "party": "zhangwei"},
                    {"role": "receiver", "party": "lina"}]})
    assert response.status_code == 422
    assert [p["field"] for p in response.json()["problems"]] == ["requester.dept"]
    with database.connection(settings.database) as conn:
        assert database.highest_event_seq(conn) == before


# --- finding 5: sessions ----------------------------------------------------------------------


def test_the_cookie_is_a_revocable_session_not_the_token(settings, client):
    token = create_token(settings, "party", "lina")
    response = post_form(client, "/login", {"token": token}, follow_redirects=False)
    cookie = response.headers["set-cookie"]
    assert token not in cookie and "HttpOnly" in cookie and "samesite=lax" in cookie.lower()
    stolen = client.cookies.get("countersign_session")
    # GET /logout (a link any page can make the browser follow) only asks to confirm.
    assert "id=\"confirm\"" in client.get("/logout").text
    assert client.get("/", follow_redirects=False).status_code == 200
    post_form(client, "/logout", follow_redirects=False)
    replay = TestClient(client.app, cookies={"countersign_session": stolen})
    assert replay.get("/", follow_redirects=False).headers["location"] == "/login"


def test_sign_in_returns_to_the_page_asked_for_and_never_to_another_site(settings, client):
    asked = "/documents/DOC-elsewhere?focus=sign"  # where a signer's mail link points
    client.cookies.clear()
    first = client.get(asked, follow_redirects=False)
    assert first.status_code == 303
    assert first.headers["location"] == "/login?" + urlencode({"next": asked})
    assert 'name="next" value="/documents/DOC-elsewhere?focus=sign"' in \
        client.get(first.headers["location"]).text
    token = create_token(settings, "party", "lina")
    back = post_form(client, "/login", {"token": token, "next": asked}, follow_redirects=False)
    assert back.status_code == 303 and back.headers["location"] == asked
    confirm = client.get("/login/link/some-code?" + urlencode({"next": asked})).text
    assert 'action="/login/link/some-code?next=%2Fdocuments%2FDOC-elsewhere%3Ffocus%3Dsign"' \
        in confirm
    for elsewhere in ("//evil.example/x", "https://evil.example/", "/\\evil.example", "x"):
        client.cookies.clear()
        response = post_form(client, "/login", {"token": token, "next": elsewhere},
                             follow_redirects=False)
        assert response.headers["location"] == "/", elsewhere


def test_the_session_cookie_is_secure_over_https(settings, app):
    https = TestClient(app, base_url="https://sign.example.com")
    token = create_token(settings, "party", "lina")
    token_csrf = csrf_of(https)
    response = https.post("/login", data={"token": token, "csrf_token": token_csrf},
                          follow_redirects=False)
    assert response.status_code == 303 and "Secure" in response.headers["set-cookie"]
    assert "max-age=31536000" in response.headers["strict-transport-security"]


# --- finding 6: key passphrase guessing -------------------------------------------------------


def test_passphrase_guessing_over_http_is_slowed_recorded_and_shown(settings, app, client):
    app.state.signers = signer_processes(replace(settings, pool_size=1))
    try:
        doc = quick_document(settings, party="zhaomin")
        headers = bearer(settings, "party", "zhaomin")
        codes = [client.post(f"/api/documents/{doc}/sign", headers=headers,
                             json={"passphrase": f"guess{n}"}).status_code
                 for n in range(FREE_FAILURES + 1)]
    finally:
        app.state.signers.shutdown()
    assert codes[:FREE_FAILURES] == [400] * FREE_FAILURES and codes[-1] == 429
    assert event_kinds(settings, doc).count("passphrase-failed") == FREE_FAILURES
    sign_in(client, create_token(settings, "party", "zhaomin"))
    notices = client.get("/?lang=en").text
    assert 'id="notices"' in notices and "wrong key passphrase" in notices and doc in notices


# --- finding 7: CSRF --------------------------------------------------------------------------


def test_a_page_on_another_port_cannot_decline_for_the_signed_in_party(settings, client):
    doc = quick_document(settings, party="lina")
    sign_in(client, create_token(settings, "party", "lina"))
    token = csrf_of(client)
    forged = client.post(f"/documents/{doc}/decline", data={
        "reason": "不同意", "csrf_token": token}, headers={"Origin": "http://127.0.0.1:9999"})
    assert forged.status_code == 403
    blind = client.post(f"/documents/{doc}/decline", data={"reason": "不同意"})
    assert blind.status_code == 403
    assert "declined" not in event_kinds(settings, doc)
    # The page's own form, with its confirmation box ticked.
    honest = post_form(client, f"/documents/{doc}/decline", {"reason": "不同意",
                                                              "confirm": "yes"},
                       follow_redirects=False)
    assert honest.status_code == 303 and "declined" in event_kinds(settings, doc)


def test_login_csrf_is_refused(settings, client):
    attackers = create_token(settings, "party", "wangqiang")
    response = client.post("/login", data={"token": attackers}, follow_redirects=False)
    assert response.status_code == 403 and not client.cookies.get("countersign_session")


# --- finding 8: webhooks without a secret ----------------------------------------------------


def test_the_service_refuses_to_start_with_unsigned_webhooks(settings, tmp_path):
    with pytest.raises(WebhookSecretMissing):
        create_app(replace(settings, webhook_urls=("http://127.0.0.1:9/hook",)))
    result = subprocess.run(
        [str(Path(sys.executable).with_name("countersign")), "--data-dir",
         str(tmp_path / "data"), "serve", "--port", str(free_port())],
        env={"COUNTERSIGN_WEBHOOKS": "http://127.0.0.1:9/hook", "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "COUNTERSIGN_WEBHOOK_SECRET" in result.stderr


# --- finding 10: the smaller ones -------------------------------------------------------------


def test_reading_a_documents_verdict_appends_nothing(settings, client):
    doc = quick_document(settings)
    headers = bearer(settings, "auditor")
    before = event_kinds(settings, doc)
    for _ in range(3):
        assert client.get(f"/api/documents/{doc}/verify", headers=headers).status_code == 200
    assert event_kinds(settings, doc) == before


def test_a_huge_blocking_limit_is_not_a_500(settings, client):
    response = client.get(f"/api/blocking?limit={10**30}", headers=bearer(settings, "admin"))
    assert response.status_code == 200


def test_every_answer_carries_the_security_headers(settings, client):
    for path in ("/login", "/api/health", "/static/countersign.css"):
        headers = client.get(path).headers
        policy = headers["content-security-policy"]
        assert "script-src 'self';" in policy and "frame-ancestors 'none'" in policy
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["x-frame-options"] == "DENY"
        assert headers["referrer-policy"] == "same-origin"


def test_no_page_template_holds_inline_script_or_style():
    for template in TEMPLATES.glob("*.html"):
        text = template.read_text(encoding="utf-8")
        assert not re.search(r"<script(?![^>]*\bsrc=)", text), template.name
        assert "<style" not in text and "style=" not in text, template.name
        assert not re.search(r"\son[a-z]+\s*=", text), template.name  # no onclick= etc.


def test_the_new_document_form_does_not_list_every_party_to_a_party(settings, client):
    sign_in(client, create_token(settings, "party", "lina"))
    form = client.get("/templates/requirement_confirmation/new").text
    assert "wangqiang" not in form and "zhaomin@example.com" not in form and "赵敏" not in form
    client.cookies.clear()
    sign_in(client, create_token(settings, "admin"))
    assert "wangqiang" in client.get("/templates/requirement_confirmation/new").text


def test_bulk_rows_are_read_off_the_event_loop(settings, client, monkeypatch):
    import asyncio

    import pipeline.jobs.bulk as bulk_jobs
    from pipeline.errors import BadInput

    seen = []

    def read_rows(path, template):
        try:
            asyncio.get_running_loop()
            seen.append("event loop")
        except RuntimeError:
            seen.append("worker thread")
        raise BadInput("停止", "stop here")

    monkeypatch.setattr(bulk_jobs, "read_rows", read_rows)
    response = client.post("/api/bulk/requirement_confirmation", content=b"{}\n",
                           headers=bearer(settings, "admin"))
    assert response.status_code == 400 and seen == ["worker thread"]


def test_sign_in_links_are_rate_limited_per_address(settings, client):
    codes = [post_form(client, "/login/link", {"email": "lina@example.com"}).status_code
             for _ in range(11)]
    assert codes[:10] == [200] * 10 and codes[10] == 429
