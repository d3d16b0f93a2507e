"""In a real browser (Debian's Chromium driven by Playwright): a progress sync goes from the
create form through three signatures — one of them an upload countersigned outside the
project — to closure and a verified archive. Screenshots of each page go to the test's
temporary folder, or to SCREENSHOTS_DIR when it is set: that is how ``make screenshots``
refreshes docs/screenshots/ for the README."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from pipeline.documents.repository import document_status
from pipeline.people.access import create_token
from tests.support.data import initialised
from tests.support.external import external_sign
from tests.support.service import running_service

pytestmark = pytest.mark.slow  # Chromium, the service and its LibreOffice pool
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    settings = initialised(tmp_path_factory.mktemp("browser") / "data")
    with running_service(settings.data_dir, {"COUNTERSIGN_POOL_SIZE": "1",
                                             "COUNTERSIGN_BACKGROUND_INTERVAL": "0"}) as base:
        yield settings, base


@pytest.fixture
def shots(tmp_path) -> Path:
    """Where the screenshots go: SCREENSHOTS_DIR (make screenshots) or a temporary folder,
    never the tracked docs/screenshots by default."""
    folder = Path(os.environ.get("SCREENSHOTS_DIR") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_create_sign_upload_close_verify_in_a_browser(server, shots, tmp_path):
    settings, base = server
    tokens = {who: create_token(settings, "party", who) for who in
              ("wangqiang", "zhaomin", "lina")}
    tokens["admin"] = create_token(settings, "admin", label="ops")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=ARGS)

        def session(who: str):
            context = browser.new_context(viewport={"width": 1100, "height": 900},
                                          locale="zh-CN")
            page = context.new_page()
            page.goto(f"{base}/login")
            page.fill("#token", tokens[who])
            page.click("form[action='/login'] button")
            page.wait_for_url(f"{base}/")
            return context, page

        # The admin fills the form generated from the manifest.
        context, page = session("admin")
        page.goto(f"{base}/templates/progress_sync/new")
        page.fill("#f-project", "企业官网改版")
        page.fill("#f-responsible_dept", "研发部")
        page.fill("#f-stage", "开发测试")
        page.fill("#f-progress", "前端完成 80%，后端联调 50%")
        page.fill("#f-support_requests", "市场部 | 确认交互设计稿 | 2024-05-25\n"
                                         "产品部 | 评审需求 | 2024-05-26")
        page.fill("#f-next_steps", "5 月 25 日前完成前端开发")
        page.fill("#f-sync_date", "2024-05-22")
        page.select_option("#role-responsible", "wangqiang")
        page.select_option("#role-supporter", ["zhaomin", "lina"])
        page.screenshot(path=str(shots / "1-create-form.png"), full_page=True)
        page.click("#create")
        page.wait_for_selector("#status")
        document_url = page.url
        assert page.inner_text("#status") == "awaiting_signatures"
        page.wait_for_load_state("networkidle")
        page.screenshot(path=str(shots / "2-document.png"), full_page=True)
        context.close()

        # Two parties sign on the server with their own keys.
        for who in ("wangqiang", "zhaomin"):
            context, page = session(who)
            assert "等待我签署" in page.content()
            page.goto(document_url)
            page.fill("#passphrase", "demo")
            page.click("#sign")
            page.wait_for_url("**done=signed")
            assert who in page.inner_text("#signed")
            if who == "wangqiang":
                page.screenshot(path=str(shots / "3-signed.png"), full_page=True)
            context.close()

        # The third countersigns in another tool and uploads the result.
        context, page = session("lina")
        page.goto(document_url)
        pdf = page.request.get(f"{document_url}/pdf").body()
        countersigned = tmp_path / "countersigned.pdf"
        # Playwright's sync API runs an event loop here: sign in another thread.
        with ThreadPoolExecutor(1) as other:
            field = next(n.field for n in document_status(
                settings, document_url.rsplit("/", 1)[1]).next if n.party == "lina")
            signed = other.submit(external_sign, settings, pdf, "lina", field).result()
        countersigned.write_bytes(signed)
        page.set_input_files("#file", str(countersigned))
        page.click("#upload")
        page.wait_for_url("**done=uploaded")
        assert page.inner_text("#status") == "completed"
        context.close()

        # The admin closes: long-term validation and the archive.
        context, page = session("admin")
        page.goto(document_url)
        page.click("#close")
        page.wait_for_url("**done=closed")
        assert page.inner_text("#status") == "closed"
        page.wait_for_load_state("networkidle")
        assert page.evaluate("document.querySelector('.pages img').naturalWidth") > 100
        assert "admin:ops" in page.inner_text("#timeline")
        page.screenshot(path=str(shots / "4-closed.png"), full_page=True)
        final = page.request.get(f"{document_url}/pdf").body()
        (tmp_path / "final.pdf").write_bytes(final)

        # Anyone verifies the archived PDF.
        page.goto(f"{base}/verify")
        page.set_input_files("#file", str(tmp_path / "final.pdf"))
        page.click("#verify")
        page.wait_for_selector("#report")
        assert "有效" in page.inner_text("#report h2")
        page.screenshot(path=str(shots / "5-verify.png"), full_page=True)
        page.set_viewport_size({"width": 390, "height": 844})  # a phone
        page.goto(document_url)
        page.screenshot(path=str(shots / "6-phone.png"))
        context.close()
        browser.close()
