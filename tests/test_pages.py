"""The pages around a document, without LibreOffice: HTML for every refusal, the document
list with its filters, the archive links, people by name, times without an ISO ``T``."""

from __future__ import annotations

import re
import threading

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from pipeline.config import Settings
from pipeline.people.access import create_token
from pipeline.people.setup import initialise
from tests.support.documents import quick_document
from tests.support.net import free_port
from tests.support.web import sign_in


@pytest.fixture(scope="module")
def settings(tmp_path_factory) -> Settings:
    settings = Settings(data_dir=tmp_path_factory.mktemp("pages") / "data",
                        background_interval_s=0, smtp_port=free_port(), verify_workers=1)
    initialise(settings)
    return settings


@pytest.fixture(scope="module")
def client(settings):
    app = create_app(settings)
    app.state.pool, app.state.pool_started = None, threading.Thread(target=lambda: None)
    app.state.pool_started.start()
    with_client = TestClient(app)
    yield with_client
    app.state.verifier.close()


def test_a_refusal_in_the_browser_is_a_page_and_the_api_stays_json(settings, client):
    doc = quick_document(settings, party="lina")
    sign_in(client, create_token(settings, "party", "lina"))
    page = client.get(f"/documents/{doc}/certificate")
    assert page.status_code == 409 and page.headers["content-type"].startswith("text/html")
    assert "not closed and archived" in page.text and 'id="flash"' in page.text
    bad = client.get("/documents?created_from=someday")
    assert bad.status_code == 200 and "someday" in bad.text  # the list stays, the problem named
    token = create_token(settings, "party", "lina")
    api = client.get(f"/api/documents/{doc}/certificate",
                     headers={"Authorization": f"Bearer {token}"})
    assert api.status_code == 409 and api.json()["code"] == "not_your_turn"


def test_the_document_list_names_people_and_times_in_one_zone(settings, client):
    doc = quick_document(settings, party="wangqiang", number="2024-产品部-777")
    client.cookies.clear()
    sign_in(client, create_token(settings, "admin", label="ops"))
    listed = client.get("/documents?q=777").text
    assert doc in listed and "王强（研发部）" in listed and "待签署" in listed
    assert not re.search(r"\d{4}-\d{2}-\d{2}T\d", listed)
    assert client.get("/documents?status=closed").text.count("/certificate") == 0
    english = client.get("/documents?q=777&lang=en").text
    assert "awaiting signatures" in english
    page = client.get(f"/documents/{doc}?lang=zh").text
    assert "创建" in page and "设置签字栏" in page  # ledger events in words
    blocking = page.split('id="blocking"')[1].split("</ul>")[0]
    assert "王强" in blocking and "wangqiang" not in blocking  # people by name
    assert not re.search(r"\d{4}-\d{2}-\d{2}T\d", page)
