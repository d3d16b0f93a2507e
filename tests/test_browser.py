"""In a real browser (Debian's Chromium driven by Playwright): a progress sync goes from the
create form through three signatures — one of them an upload countersigned outside the
project — to closure and a verified archive. Screenshots of each page go to the test's
temporary folder, or to SCREENSHOTS_DIR when it is set: that is how ``make screenshots``
refreshes docs/screenshots/ for the README."""

from __future__ import annotations

import os
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from pipeline.documents.repository import document_status
from pipeline.people.access import create_token
from tests.support.data import initialised
from tests.support.external import external_sign
from tests.support.service import running_service

ISO_T = re.compile(r"\d{4}-\d{2}-\d{2}T\d")
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


def signed_in_page(browser, base: str, token: str):
    """Return a new (context, page) of ``browser`` signed in with ``token`` at ``base``."""
    context = browser.new_context(viewport={"width": 1100, "height": 900}, locale="zh-CN")
    page = context.new_page()
    page.goto(f"{base}/login")
    page.fill("#token", token)
    page.click("form[action='/login'] button")
    page.wait_for_url(f"{base}/")
    return context, page


def test_create_sign_upload_close_verify_in_a_browser(server, shots, tmp_path):
    settings, base = server
    tokens = {who: create_token(settings, "party", who) for who in
              ("wangqiang", "zhaomin", "lina")}
    tokens["admin"] = create_token(settings, "admin", label="ops")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=ARGS)

        def session(who: str):
            return signed_in_page(browser, base, tokens[who])

        # The admin fills the form generated from the manifest.
        context, page = session("admin")
        page.goto(f"{base}/templates/progress_sync/new")
        page.fill("#f-project", "企业官网改版")
        page.fill("#f-responsible_dept", "研发部")
        page.fill("#f-stage", "开发测试")
        page.fill("#f-progress", "前端完成 80%，后端联调 50%")
        # A table field is a grid: one input per cell, rows added with a button.
        page.fill("input[name='support_requests.0.dept']", "市场部")
        page.fill("textarea[name='support_requests.0.content']", "确认交互设计稿")
        page.fill("input[name='support_requests.0.due']", "2024-05-25")
        page.click("#add-support_requests")
        page.fill("input[name='support_requests.1.dept']", "产品部")
        page.fill("textarea[name='support_requests.1.content']", "评审需求")
        page.fill("input[name='support_requests.1.due']", "2024-05-26")
        page.fill("#f-next_steps", "5 月 25 日前完成前端开发")
        page.fill("#f-sync_date", "2024-05-22")
        page.select_option("#role-responsible", "wangqiang")
        page.select_option("#role-supporter", ["zhaomin", "lina"])
        page.screenshot(path=str(shots / "1-create-form.png"), full_page=True)
        page.click("#create")
        page.wait_for_selector("#status")
        document_url = page.url.split("?")[0]
        assert page.get_attribute("#status", "data-status") == "awaiting_signatures"
        assert "待签署" in page.inner_text("#status") and "文档已创建" in page.inner_text("#notice")
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
            assert {"wangqiang": "王强", "zhaomin": "赵敏"}[who] in page.inner_text("#signed")
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
        assert page.get_attribute("#status", "data-status") == "completed"
        context.close()

        # The admin closes: long-term validation and the archive.
        context, page = session("admin")
        page.goto(document_url)
        page.click("#close")
        page.wait_for_url("**done=closed")
        assert page.get_attribute("#status", "data-status") == "closed"
        page.wait_for_load_state("networkidle")
        assert page.evaluate("document.querySelector('.pages img').naturalWidth") > 100
        assert "管理员 ops" in page.inner_text("#timeline")
        assert not ISO_T.search(page.inner_text("body"))  # one zone, no ISO "T" strings
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


def test_list_search_resolve_revise_and_void_in_a_browser(server, shots):
    """The paths that used to dead-end, walked in the pages: an issue whose result is
    recorded before its responsible department signs, a declined letter revised into its
    second version, a void with its confirmation, and the document list that finds them."""
    settings, base = server
    tokens = {who: create_token(settings, "party", who) for who in
              ("wangqiang", "liuyang", "zhangwei", "lina")}
    tokens["admin"] = create_token(settings, "admin", label="ops")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=ARGS)

        def session(who: str):
            return signed_in_page(browser, base, tokens[who])

        # An issue is created with 结果确认 empty; a first try without the due time keeps
        # every value and names the field by its label.
        context, page = session("admin")
        page.goto(f"{base}/templates/issue_tracking/new")
        page.fill("#f-description", "客户支付系统接口响应超时，影响30%订单支付")
        page.fill("#f-reporting_dept", "技术部")
        page.fill("#f-responsible_dept", "研发部")
        page.fill("#f-solution", "优化接口缓存逻辑，增加服务器节点")
        page.fill("input[name='collaborators.0.dept']", "运维部")
        page.fill("textarea[name='collaborators.0.role']", "提供服务器资源支持")
        page.click("#add-collaborators")
        page.fill("input[name='collaborators.1.dept']", "测试部")
        page.fill("textarea[name='collaborators.1.role']", "配合回归测试")
        page.select_option("#role-responsible", "wangqiang")
        page.select_option("#role-reporter", "liuyang")
        page.click("#create")
        page.wait_for_selector("#problems")
        assert "计划完成时限" in page.inner_text("#problems")
        assert page.input_value("input[name='collaborators.1.dept']") == "测试部"
        assert page.input_value("#role-responsible") == "wangqiang"
        page.screenshot(path=str(shots / "7-kept-after-error.png"), full_page=True)
        page.fill("#f-due", "2024-05-25T18:00")
        page.click("#create")
        page.wait_for_url("**done=created")
        issue_url = page.url.split("?")[0]
        assert "须先填写结果确认" in page.inner_text("#signed")
        context.close()

        # The responsible department follows its mail link to the focused signing view.
        # It cannot sign before recording the result; then it can.
        context, page = session("wangqiang")
        page.goto(f"{issue_url}?focus=sign")
        page.wait_for_selector("#focused")
        assert "责任部门" in page.inner_text("#focused")
        page.screenshot(path=str(shots / "7b-focused-signing.png"), full_page=True)
        page.fill("#passphrase", "demo")
        page.click("#sign")
        page.wait_for_selector("#flash")
        assert "结果确认" in page.inner_text("#flash")
        page.fill("#result", "已修复，支付响应时间缩短至2秒内")
        page.screenshot(path=str(shots / "8-resolve.png"), full_page=True)
        page.click("#resolve")
        page.wait_for_url("**done=resolved")
        assert "结果确认已填写" in page.inner_text("#notice")
        assert "填写结果确认" in page.inner_text("#timeline")
        page.fill("#passphrase", "demo")
        page.click("#sign")
        page.wait_for_url("**done=signed")
        assert "王强" in page.inner_text("#signed")
        context.close()

        # A party creates a letter; the receiver declines it, after confirming.
        context, page = session("zhangwei")
        page.goto(f"{base}/templates/requirement_confirmation/new")
        page.fill("input[name='requester.dept']", "市场部")
        page.fill("input[name='requester.name']", "张伟")
        page.fill("input[name='receiver.dept']", "产品部")
        page.fill("input[name='receiver.name']", "李娜")
        page.fill("#f-background", "为提升客户留存率，需增加用户积分兑换功能")
        page.fill("#f-details", "积分规则设置\n兑换商品管理")
        page.fill("#f-expected_delivery", "2024-06-30")
        page.select_option("#f-priority", "高")
        # A party types the parties' ids: the form never hands it the whole directory.
        page.fill("#role-requester", "zhangwei")
        page.fill("#role-receiver", "lina")
        page.click("#create")
        page.wait_for_url("**done=created")
        letter_url = page.url.split("?")[0]
        number = page.inner_text("#number")
        page.fill("#passphrase", "demo")
        page.click("#sign")
        page.wait_for_url("**done=signed")
        context.close()
        context, page = session("lina")
        page.goto(letter_url)
        page.fill("#reason", "6月底无法交付")
        page.click("#decline")  # the confirmation box is not ticked: nothing happens
        assert page.get_attribute("#status", "data-status") == "awaiting_signatures"
        page.check("#decline-confirm")
        page.click("#decline")
        page.wait_for_url("**done=declined")
        assert page.get_attribute("#status", "data-status") == "declined"
        assert "等待" not in page.inner_text("#blocking")  # the decliner is not "waiting"
        context.close()

        # Its creator revises it: the form comes back filled, the new version keeps the
        # number with 第2版 and the declined one points forward to it.
        context, page = session("zhangwei")
        page.goto(letter_url)
        page.click("#revise")
        page.wait_for_selector("#revising")
        assert page.input_value("input[name='receiver.name']") == "李娜"
        assert page.input_value("#role-receiver") == "lina"
        page.fill("#f-expected_delivery", "2024-07-31")
        page.fill("#f-receiver_assessment", "7月底可交付")
        page.screenshot(path=str(shots / "9-revise.png"), full_page=True)
        page.click("#create")
        page.wait_for_url("**done=revised")
        second_url = page.url.split("?")[0]
        assert page.inner_text("#number") == f"{number} 第2版"
        assert number in page.inner_text("#supersedes")
        page.screenshot(path=str(shots / "10-revised.png"), full_page=True)
        page.goto(letter_url)
        assert page.get_attribute("#status", "data-status") == "superseded"
        assert f"{number} 第2版" in page.inner_text("#superseded-by")
        # The creator voids the new version, with a reason and a confirmation.
        page.goto(second_url)
        page.fill("#v-reason", "需求取消")
        page.check("#void-confirm")
        page.click("#void")
        page.wait_for_url("**done=voided")
        assert page.get_attribute("#status", "data-status") == "voided"
        assert "需求取消" in page.inner_text("#voided")
        page.screenshot(path=str(shots / "11-voided.png"), full_page=True)
        context.close()

        # The list finds every document, ended ones too, by words, status and template.
        context, page = session("admin")
        page.goto(f"{base}/documents")
        listed = page.inner_text("#documents")
        assert number in listed and "已由新版本取代" in listed and "已作废" in listed
        assert not ISO_T.search(page.inner_text("body"))
        page.screenshot(path=str(shots / "12-list.png"), full_page=True)
        page.fill("#q", "第2版")
        page.click("#search")
        page.wait_for_selector("#documents")
        assert page.locator("#documents tr").count() == 2  # the header and one document
        page.goto(f"{base}/documents?status=superseded")
        assert page.locator("#documents tr").count() == 2
        page.select_option("#template", "issue_tracking")
        page.select_option("#status", "")
        page.click("#search")
        page.wait_for_selector("#documents")
        assert "WT-" in page.inner_text("#documents") and number not in page.inner_text(
            "#documents")
        page.screenshot(path=str(shots / "13-search.png"), full_page=True)
        context.close()
        browser.close()
