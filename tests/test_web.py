"""The web pages, through the application in-process: sign-in, lists, forms, errors."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.pages.forms import form_to_data
from pipeline.config import Settings
from pipeline.forms.manifest import get_template
from pipeline.people.access import create_token
from pipeline.people.setup import initialise
from tests.support.web import post_form, sign_in


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    """The application in-process; it starts its LibreOffice pool, so tests using it are
    marked slow."""
    settings = Settings(data_dir=tmp_path_factory.mktemp("web") / "data", pool_size=1,
                        background_interval_s=0)
    initialise(settings)
    with TestClient(create_app(settings)) as client:
        yield settings, client


@pytest.mark.slow
def test_pages_need_sign_in(web):
    _, client = web
    client.cookies.clear()
    response = client.get("/", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/login"
    assert "登录" in client.get("/login").text
    assert post_form(client, "/login", {"token": "nope"}).status_code == 401


@pytest.mark.slow
def test_one_time_link_signs_in_once(web, smtp, monkeypatch):
    settings, client = web
    inbox, port = smtp
    client.app.state.settings = settings.__class__(**{**settings.__dict__, "smtp_port": port})
    try:
        client.cookies.clear()
        unknown = post_form(client, "/login/link", {"email": "nobody@example.com"})
        known = post_form(client, "/login/link", {"email": "lina@example.com"})
        assert unknown.text.count("sign-in link") == known.text.count("sign-in link")
        assert len(inbox.messages) == 1
        body = inbox.messages[0][1].get_payload(decode=True).decode()
        path = re.search(r"(/login/link/\S+)", body).group(1)
        # Following the link only asks to confirm: a mail scanner fetching it signs no one in.
        assert client.get(path).status_code == 200 and not client.cookies.get(
            "countersign_session")
        first = post_form(client, path, page=path, follow_redirects=False)
        assert first.status_code == 303
        assert "Waiting on me" in client.get("/?lang=en").text
        client.cookies.clear()
        assert post_form(client, path, page=path).status_code == 401  # used once
    finally:
        client.app.state.settings = settings


@pytest.mark.slow
def test_create_form_validation_and_document_page(web):
    settings, client = web
    client.cookies.clear()
    sign_in(client, create_token(settings, "admin", label="ops"))
    form = client.get("/templates/requirement_confirmation/new")
    assert "需求背景与目标" in form.text and "Background and goal" in form.text
    bad = post_form(client, "/templates/requirement_confirmation/new", {
        "requester.dept": "市场部", "requester.name": "张伟", "receiver.dept": "产品部",
        "receiver.name": "李娜", "background": "", "details": "积分规则",
        "expected_delivery": "2024-13-40", "priority": "高",
        "role:requester": "zhangwei", "role:receiver": "lina"})
    assert bad.status_code == 422
    # Messages use the field's label; what was typed and chosen stays in the form.
    assert "需求背景与目标：缺少必填字段" in bad.text and "期望交付时间：日期格式错误" in bad.text
    assert 'value="张伟"' in bad.text and 'value="2024-13-40"' in bad.text
    assert '<option value="lina" selected>' in bad.text
    good = post_form(client, "/templates/requirement_confirmation/new", {
        "requester.dept": "市场部", "requester.name": "张伟", "requester.title": "经理",
        "receiver.dept": "产品部", "receiver.name": "李娜",
        "background": "提升留存", "details": "积分规则\n兑换商品", "expected_delivery":
        "2024-06-30", "priority": "高", "role:requester": "zhangwei",
        "role:receiver": "lina"}, follow_redirects=False)
    assert good.status_code == 303
    page = client.get(good.headers["location"])
    assert "需求确认函" in page.text and 'data-status="awaiting_signatures"' in page.text
    assert "文档已创建" in page.text and "张伟（市场部）" in page.text
    assert 'src="/documents/' in page.text
    image = client.get(re.search(r'src="(/documents/[^"]+\.png[^"]*)"', page.text).group(1))
    assert image.status_code == 200 and image.content.startswith(b"\x89PNG")


@pytest.mark.slow
def test_a_party_never_sees_another_partys_document(web):
    settings, client = web
    client.cookies.clear()
    sign_in(client, create_token(settings, "admin", label="ops2"))
    created = post_form(client, "/templates/requirement_confirmation/new", {
        "requester.dept": "市场部", "requester.name": "张伟", "receiver.dept": "产品部",
        "receiver.name": "李娜", "background": "x",
        "details": "a", "expected_delivery": "2024-06-30", "priority": "中",
        "role:requester": "zhangwei", "role:receiver": "lina"}, follow_redirects=False)
    path = created.headers["location"].split("?")[0]
    client.cookies.clear()
    sign_in(client, create_token(settings, "party", "wangqiang"))
    assert client.get(path).status_code == 404
    assert client.get(f"{path}/pdf").status_code == 404


def test_form_to_data_builds_lists_tables_and_objects():
    template = get_template("progress_sync")
    # The grid posts one input per cell (field.ROW.column); an empty row is left out.
    data = form_to_data(template, {
        "project": " 官网 ", "risks": "",
        "support_requests.0.dept": "市场部", "support_requests.0.content": "确认",
        "support_requests.0.due": "2024-05-25", "support_requests.1.dept": "",
        "support_requests.2.dept": "产品部", "support_requests.2.content": "评审",
        "support_requests.2.due": "2024-05-26"})
    assert data == {"project": "官网", "support_requests": [
        {"dept": "市场部", "content": "确认", "due": "2024-05-25"},
        {"dept": "产品部", "content": "评审", "due": "2024-05-26"}]}



@pytest.mark.slow
def test_progress_action_items_and_review_pages(web):
    settings, client = web
    client.cookies.clear()
    sign_in(client, create_token(settings, "admin", label="ops3"))
    created = post_form(client, "/templates/meeting_minutes/new", {
        "topic": "周会", "start": "2024-05-21T14:00", "end": "2024-05-21T15:00",
        "location": "线上", "attendees.0.name": "李娜", "attendees.0.dept": "产品部",
        "agenda": "进度", "discussion": "无分歧", "resolutions": "继续",
        "action_items.0.task": "输出文档", "action_items.0.owner": "李娜",
        "action_items.0.due": "2024-05-22", "distribution": "全员", "archive_folder": "纪要",
        "role:host": "zhangwei", "role:attendee": "lina"}, follow_redirects=False)
    assert created.status_code == 303, created.text
    path = created.headers["location"].split("?")[0]
    page = client.get(path).text
    assert 'id="action-done"' in page and "输出文档" in page
    done = post_form(client, f"{path}/action-done", {"item": "1"}, follow_redirects=False)
    assert done.status_code == 303
    assert 'id="action-done"' not in client.get(path).text
    issue = post_form(client, "/templates/issue_tracking/new", {
        "description": "超时", "reporting_dept": "技术部", "responsible_dept": "研发部",
        "solution": "扩容", "due": "2024-05-25T18:00", "role:responsible": "wangqiang",
        "role:reporter": "liuyang"}, follow_redirects=False)
    issue_path = issue.headers["location"].split("?")[0]
    added = post_form(client, f"{issue_path}/progress", {"date": "2024-05-24",
                                                        "text": "回归通过"},
                        follow_redirects=False)
    assert added.status_code == 303
    assert "回归通过" in client.get(issue_path).text
    review_page = client.get("/report")
    assert review_page.status_code == 200 and "复盘报告" in review_page.text
    chart = client.get(re.search(r'src="(/report/chart\.png[^"]+)"',
                                 review_page.text).group(1).replace("&amp;", "&"))
    assert chart.content.startswith(b"\x89PNG")
