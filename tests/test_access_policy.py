"""The one access policy: its table, and the REST routes and the web pages asking it alike.

The attacks are performed: an auditor writing through the pages, a party reaching for a
document it may not see; each is refused and nothing stored changes.
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from pipeline.config import Settings
from pipeline.documents.repository import blocking_documents, document_events, document_status
from pipeline.documents.state import DocumentState, Member
from pipeline.errors import Forbidden, UnknownDocument
from pipeline.people.access import Principal, Role, create_token
from pipeline.people.policy import RULES, Action, authorize, may, may_see
from pipeline.people.setup import initialise
from pipeline.record import database
from tests.support.forms import example
from tests.support.web import csrf_of, post_form
from tests.support.web import sign_in as sign_in_with_form

WRITES = {Action.ADD_PARTY, Action.CREATE_DOCUMENT, Action.SIGN, Action.UPLOAD,
          Action.DECLINE, Action.VOID, Action.CLOSE, Action.ADD_PROGRESS,
          Action.MARK_ACTION_DONE, Action.BULK, Action.REASSIGN, Action.RESOLVE,
          Action.REVISE, Action.HOLD}
MISSING = "doc-000000000000"

ADMIN = Principal(Role.ADMIN, None, "ops")
AUDITOR = Principal(Role.AUDITOR, None, "audit")


def party(party_id: str) -> Principal:
    return Principal(Role.PARTY, party_id, "demo")


def test_every_action_has_a_rule_and_auditors_never_write():
    assert set(RULES) == set(Action)
    for action in WRITES:
        assert not may(AUDITOR, action), action
    # Everything else is a read, and an auditor may do every read.
    for action in set(Action) - WRITES:
        assert may(AUDITOR, action), action
    # A party may ask to void or revise: the use case then lets only the creator do it.
    assert may(party("lina"), Action.VOID) and not may(ADMIN, Action.SIGN)
    assert not may(party("lina"), Action.CLOSE)


def test_a_party_sees_only_documents_it_created_or_signs():
    state = DocumentState(
        id="doc-1", template="requirement_confirmation", template_version=1, number="n",
        creator="qian", created_at="2024-05-20T00:00:00+00:00", form={},
        members=(Member("requester", 1, None, "zhangwei", "requester"),
                 Member("receiver", 2, None, "lina", "receiver")))
    assert may_see(party("zhangwei"), state) and may_see(party("lina"), state)
    assert may_see(party("qian"), state)  # the creator
    assert not may_see(party("wangqiang"), state)
    assert not may_see(Principal(Role.PARTY, None, "broken"), state)
    assert may_see(ADMIN, state) and may_see(AUDITOR, state)


def test_authorize_refuses_in_the_order_the_scope_says(tmp_path):
    settings = Settings(data_dir=tmp_path)
    database.connect(settings.database).close()
    # A step on a document: one the caller cannot see answers as missing, whatever the role.
    with pytest.raises(UnknownDocument) as hidden:
        authorize(settings, party("lina"), Action.VOID, MISSING)
    assert str(hidden.value) == str(UnknownDocument.named(MISSING))
    # An audit: a role that never audits is refused the same way whatever the document.
    with pytest.raises(Forbidden, match="admin or auditor"):
        authorize(settings, party("lina"), Action.VERIFY_DOCUMENT, MISSING)
    with pytest.raises(UnknownDocument):
        authorize(settings, AUDITOR, Action.VERIFY_DOCUMENT, MISSING)
    with pytest.raises(Forbidden, match="admin role"):
        authorize(settings, AUDITOR, Action.ADD_PARTY)
    assert authorize(settings, ADMIN, Action.ADD_PARTY) is None


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    settings = Settings(data_dir=tmp_path_factory.mktemp("policy") / "data", pool_size=1,
                        background_interval_s=0)
    initialise(settings)
    tokens = {who: create_token(settings, Role.PARTY, who)
              for who in ("zhangwei", "lina", "wangqiang")}
    tokens["admin"] = create_token(settings, Role.ADMIN, label="ops")
    tokens["auditor"] = create_token(settings, Role.AUDITOR)
    with TestClient(create_app(settings)) as client:
        admin = {"Authorization": f"Bearer {tokens['admin']}"}
        documents = {}
        for key, parties in (("meeting_minutes", [("host", "zhangwei"), ("attendee", "lina")]),
                             ("issue_tracking", [("responsible", "zhangwei"),
                                                 ("reporter", "lina")])):
            response = client.post("/api/documents", headers=admin, json={
                "template": key, "data": example(key),
                "parties": [{"role": r, "party": p} for r, p in parties]})
            assert response.status_code == 201, response.text
            documents[key] = response.json()["id"]
        yield settings, client, tokens, documents


def sign_in(client: TestClient, token: str) -> None:
    client.cookies.clear()
    sign_in_with_form(client, token)


def refused_by_policy(response) -> bool:
    """True for the policy's 403 (not the CSRF check's, which would hide a missing rule)."""
    return response.status_code == 403 and "this needs the" in response.text


@pytest.mark.slow
def test_an_auditor_cannot_write_through_the_pages(service):
    settings, client, tokens, documents = service
    minutes, issue = documents["meeting_minutes"], documents["issue_tracking"]
    open_before = {d.id for d in blocking_documents(settings)}
    events_before = {doc: len(document_events(settings, doc)) for doc in documents.values()}
    sign_in(client, tokens["auditor"])

    assert client.get("/templates").status_code == 403
    assert client.get("/templates/issue_tracking/new").status_code == 403
    created = post_form(client, "/templates/issue_tracking/new", {
        "description": "超时", "reporting_dept": "技术部", "responsible_dept": "研发部",
        "solution": "扩容", "due": "2024-05-25T18:00", "role:responsible": "zhangwei",
        "role:reporter": "lina"}, follow_redirects=False)
    assert created.status_code == 403 and "this needs the admin or party role" in created.text
    progress = post_form(client, f"/documents/{issue}/progress",
                         {"date": "2024-05-24", "text": "审计员写入"}, follow_redirects=False)
    assert refused_by_policy(progress)
    done = post_form(client, f"/documents/{minutes}/action-done", {"item": "1"},
                     follow_redirects=False)
    assert refused_by_policy(done)
    assert refused_by_policy(post_form(client, f"/documents/{minutes}/close",
                                       follow_redirects=False))
    assert refused_by_policy(post_form(client, f"/documents/{minutes}/decline",
                                       {"reason": "x"}, follow_redirects=False))

    # Nothing was created or recorded, and the auditor still reads, without write forms.
    assert {d.id for d in blocking_documents(settings)} == open_before
    assert {doc: len(document_events(settings, doc)) for doc in documents.values()} == \
        events_before
    assert document_status(settings, minutes).action_items_done == []
    assert document_status(settings, issue).progress == []
    page = client.get(f"/documents/{minutes}")
    assert page.status_code == 200 and 'id="action-done"' not in page.text
    assert 'href="/templates"' not in page.text  # no "new document" link either


def _same_answer(hidden, missing, hidden_id: str) -> None:
    assert hidden.status_code == missing.status_code == 404
    assert hidden.content.replace(hidden_id.encode(), MISSING.encode()) == missing.content


@pytest.mark.slow
def test_hidden_and_missing_documents_answer_alike_in_rest_and_pages(service):
    _, client, tokens, documents = service
    doc = documents["meeting_minutes"]  # wangqiang is not a party to it
    bearer = {"Authorization": f"Bearer {tokens['wangqiang']}"}
    for method, suffix, body in (("GET", "", None), ("GET", "/pdf", None),
                                 ("POST", "/sign", {"passphrase": "demo"}),
                                 ("POST", "/decline", {"reason": "x"}),
                                 ("POST", "/void", {"reason": "x"}),
                                 ("POST", "/close", None)):
        hidden = client.request(method, f"/api/documents/{doc}{suffix}", headers=bearer,
                                json=body)
        missing = client.request(method, f"/api/documents/{MISSING}{suffix}", headers=bearer,
                                 json=body)
        _same_answer(hidden, missing, doc)
        assert hidden.json()["code"] == "unknown_document"

    sign_in(client, tokens["wangqiang"])
    for method, suffix, form in (("GET", "", None), ("GET", "/pdf", None),
                                 ("GET", "/pages/1.png", None),
                                 ("POST", "/sign", {"passphrase": "demo"}),
                                 ("POST", "/decline", {"reason": "x"}),
                                 ("POST", "/close", None),
                                 ("POST", "/progress", {"date": "2024-05-24", "text": "x"}),
                                 ("POST", "/action-done", {"item": "1"})):
        if method == "POST":  # past the CSRF check, so the answer is the policy's
            form = {**(form or {}), "csrf_token": csrf_of(client)}
        hidden = client.request(method, f"/documents/{doc}{suffix}", data=form,
                                follow_redirects=False)
        missing = client.request(method, f"/documents/{MISSING}{suffix}", data=form,
                                 follow_redirects=False)
        _same_answer(hidden, missing, doc)
        assert "unknown document" in hidden.text
    assert len(document_status(client.app.state.settings, doc).signed) == 0


@pytest.mark.slow
def test_a_party_may_not_close_through_the_pages(service):
    _, client, tokens, documents = service
    sign_in(client, tokens["zhangwei"])
    refused = post_form(client, f"/documents/{documents['meeting_minutes']}/close",
                        follow_redirects=False)
    assert refused.status_code == 403 and "this needs the admin role" in refused.text
