"""The REST API: errors as JSON, tokens and roles, and the document flow over HTTP.

Every application here starts its LibreOffice pool (in the background), so every test is
slow."""

from __future__ import annotations

import json
import time
from urllib.parse import quote

import httpx
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from pipeline.config import Settings
from pipeline.people.access import create_token
from pipeline.people.setup import initialise
from tests.support.external import external_sign
from tests.support.forms import TEMPLATE_KEYS, example
from tests.support.service import running_service

pytestmark = pytest.mark.slow


def test_health_and_templates(tmp_path):
    with TestClient(create_app(Settings(data_dir=tmp_path))) as client:
        assert client.get("/api/health").json()["status"] == "ok"
        keys = {item["key"] for item in client.get("/api/templates").json()}
        assert keys == set(TEMPLATE_KEYS)
        one = client.get("/api/templates/meeting_minutes").json()
        assert one["title"] == "会议纪要" and one["version"] == 2


def test_unknown_template_is_a_json_404(tmp_path):
    with TestClient(create_app(Settings(data_dir=tmp_path))) as client:
        response = client.get("/api/templates/nope")
    assert response.status_code == 404
    body = response.json()
    assert body["code"] == "unknown_template" and "未知模板" in body["zh"]


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    settings = Settings(data_dir=tmp_path_factory.mktemp("api") / "data",
                        pool_size=1)
    initialise(settings)
    tokens = {
        "admin": create_token(settings, "admin", label="ops"),
        "auditor": create_token(settings, "auditor"),
        "zhangwei": create_token(settings, "party", "zhangwei"),
        "lina": create_token(settings, "party", "lina"),
        "wangqiang": create_token(settings, "party", "wangqiang"),
    }
    with TestClient(create_app(settings)) as client:
        yield settings, client, {k: {"Authorization": f"Bearer {v}"} for k, v in tokens.items()}


@pytest.fixture(scope="module")
def document(service):
    _, client, auth = service
    response = client.post("/api/documents", headers=auth["zhangwei"], json={
        "template": "requirement_confirmation", "data": example("requirement_confirmation"),
        "parties": [{"role": "requester", "party": "zhangwei"},
                    {"role": "receiver", "party": "lina"}]})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def test_requests_without_a_valid_token_are_401(service, document):
    _, client, _ = service
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic x"}):
        response = client.get(f"/api/documents/{document}", headers=headers)
        assert response.status_code == 401 and response.json()["code"] == "unauthorized"


def test_access_matrix(service, document):
    _, client, auth = service
    doc = f"/api/documents/{document}"
    matrix = [
        ("GET", "/api/parties", {"admin": 200, "auditor": 200, "zhangwei": 403}),
        ("GET", doc, {"admin": 200, "auditor": 200, "zhangwei": 200, "lina": 200,
                      "wangqiang": 404}),
        ("GET", f"{doc}/pdf", {"auditor": 200, "lina": 200, "wangqiang": 404}),
        ("GET", f"{doc}/verify", {"admin": 200, "auditor": 200, "zhangwei": 403}),
        ("GET", "/api/ledger/verify", {"admin": 200, "auditor": 200, "lina": 403}),
        # Only the creator (zhangwei here) or an admin voids: lina, a signer, is refused.
        ("POST", f"{doc}/void", {"auditor": 403, "lina": 403, "wangqiang": 404}),
        ("POST", f"{doc}/close", {"auditor": 403, "lina": 403}),
        ("POST", f"{doc}/sign", {"admin": 403, "auditor": 403, "wangqiang": 404}),
        ("POST", "/api/parties", {"auditor": 403, "lina": 403}),
        ("POST", "/api/documents", {"auditor": 403}),
    ]
    bodies = {"void": {"reason": "x"}, "sign": {"passphrase": "demo"},
              "parties": {"name": "a", "dept": "b", "email": "c@example.com"},
              "documents": {"template": "requirement_confirmation", "data": {},
                            "parties": []}}
    for method, path, expected in matrix:
        body = next((v for k, v in bodies.items() if path.endswith(k)), None)
        for who, status in expected.items():
            response = client.request(method, path, headers=auth[who], json=body)
            assert response.status_code == status, (method, path, who, response.text)
            if status >= 400:
                assert {"code", "zh", "en"} <= set(response.json())
    # A document another party may not know about looks exactly like one that does not exist.
    hidden = client.get(doc, headers=auth["wangqiang"]).json()
    missing = client.get("/api/documents/doc-000000000000", headers=auth["wangqiang"]).json()
    assert hidden["code"] == missing["code"] == "unknown_document"


def test_blocking_shows_a_party_only_its_documents(service, document):
    _, client, auth = service
    for who, sees in (("lina", True), ("zhangwei", True), ("wangqiang", False),
                      ("auditor", True)):
        ids = {item["id"] for item in client.get("/api/blocking", headers=auth[who]).json()}
        assert (document in ids) is sees, who


def test_sign_upload_and_close_over_http(service, document):
    settings, client, auth = service
    doc = f"/api/documents/{document}"
    early = client.post(f"{doc}/sign", headers=auth["lina"], json={"passphrase": "demo"})
    assert early.status_code == 409 and early.json()["code"] == "not_your_turn"
    wrong = client.post(f"{doc}/sign", headers=auth["zhangwei"], json={"passphrase": "nope"})
    assert wrong.status_code == 400 and wrong.json()["code"] == "wrong_passphrase"
    signed = client.post(f"{doc}/sign", headers=auth["zhangwei"], json={"passphrase": "demo"})
    assert signed.status_code == 200 and signed.json()["next"][0]["party"] == "lina"

    current = client.get(f"{doc}/pdf", headers=auth["lina"]).content
    junk = client.post(f"{doc}/upload", headers={**auth["lina"],
                                                 "Content-Type": "application/pdf"},
                       content=b"not a pdf")
    assert junk.status_code == 400 and junk.json()["code"] == "upload_rejected"
    countersigned = external_sign(settings, current, "lina", "receiver")
    accepted = client.post(f"{doc}/upload", headers={**auth["lina"],
                                                     "Content-Type": "application/pdf"},
                           content=countersigned)
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["status"] == "completed"

    # Closed as a job (Prefer: respond-async), then asked again the plain way: the answer
    # is the closed document's status, nothing repeated.
    queued = client.post(f"{doc}/close", headers={**auth["admin"],
                                                  "Prefer": "respond-async"})
    assert queued.status_code == 202, queued.text
    assert queued.headers["Location"] == f"/api/jobs/{queued.json()['id']}"
    job = wait_for_job(client, queued.json()["id"], auth["admin"])
    assert job["status"] == "done" and job["result"]["status"] == "closed", job
    closed = client.post(f"{doc}/close", headers=auth["admin"])
    assert closed.status_code == 200 and closed.json()["status"] == "closed"
    final = client.get(f"{doc}/pdf", headers=auth["auditor"]).content
    verdict = client.post("/api/verify", headers={**auth["auditor"],
                                                  "Content-Type": "application/pdf"},
                          content=final).json()
    assert verdict["valid"] and len(verdict["signatures"]) == 2


def test_bad_requests_are_json(service):
    _, client, auth = service
    malformed = client.post("/api/documents", headers=auth["admin"], json={"template": 1})
    assert malformed.status_code == 422 and malformed.json()["code"] == "bad_request"
    invalid = client.post("/api/documents", headers=auth["admin"], json={
        "template": "issue_tracking", "data": {"due": "soon"}, "parties": []})
    assert invalid.status_code == 422
    assert any(p["field"] == "due" for p in invalid.json()["problems"])
    junk = client.post("/api/verify", headers={**auth["auditor"],
                                               "Content-Type": "application/pdf"},
                       content=b"%PDF-1.4 garbage")
    assert junk.status_code == 200 and junk.json()["valid"] is False


def test_oversized_upload_is_413(service, document):
    from dataclasses import replace

    settings, client, auth = service
    client.app.state.settings = replace(settings, max_upload_bytes=1000)
    try:
        response = client.post("/api/verify", headers={**auth["auditor"],
                                                       "Content-Type": "application/pdf"},
                               content=b"%PDF" + b"0" * 5000)
    finally:
        client.app.state.settings = settings
    assert response.status_code == 413 and response.json()["code"] == "too_large"


def wait_for_job(client, job_id: str, headers: dict, within_s: float = 120) -> dict:
    """Return the report of job ``job_id`` once it is over (done or failed)."""
    deadline = time.monotonic() + within_s
    while True:
        job = client.get(f"/api/jobs/{job_id}", headers=headers).json()
        if job["status"] in ("done", "failed") or time.monotonic() > deadline:
            return job
        time.sleep(0.3)


def test_countersign_serve_answers(tmp_path):
    with running_service(tmp_path, {"COUNTERSIGN_POOL_SIZE": "1"}) as base:
        response = httpx.get(f"{base}/api/templates", timeout=10)
        assert response.status_code == 200
        assert len(response.json()) == 4
        assert httpx.get(f"{base}/docs", timeout=10).status_code == 200


def test_bulk_runs_as_a_job_with_progress(service):
    import json as json_module

    _, client, auth = service
    good = json_module.dumps(example("issue_tracking"), ensure_ascii=False)
    body = "\n".join([good, '{"due": "soon"}', good]) + "\n"
    started = client.post("/api/bulk/issue_tracking", headers={**auth["admin"],
                          "Content-Type": "application/x-ndjson"}, content=body.encode())
    assert started.status_code == 202, started.text
    job = started.json()
    assert job["total"] == 3 and job["status"] == "queued"
    job = wait_for_job(client, job["id"], auth["admin"])
    assert job["status"] == "done" and job["done"] == 3
    assert (job["succeeded"], job["failed"]) == (2, 1)
    assert "due" in next(r for r in job["results"] if r["line"] == 2)["error"]
    made = client.get(job["results"][0]["url"], headers=auth["admin"])
    assert made.status_code == 200 and made.content.startswith(b"%PDF-")
    assert client.get(f"/api/jobs/{job['id']}", headers=auth["lina"]).status_code == 403
    assert client.get("/api/jobs/job-nope", headers=auth["admin"]).status_code == 404


def test_every_endpoint_for_every_role(service):
    """Walks every /api route with every kind of caller: allowed calls get past access
    control (their bodies are made harmless, so nothing changes), the rest are refused —
    403, or 404 where the caller may not know the document exists."""
    _, client, auth = service
    created = client.post("/api/documents", headers=auth["admin"], json={
        "template": "requirement_confirmation", "data": example("requirement_confirmation"),
        "parties": [{"role": "requester", "party": "zhangwei"},
                    {"role": "receiver", "party": "lina"}]}).json()["id"]
    row = json.dumps(example("issue_tracking"), ensure_ascii=False).encode() + b"\n"
    job = client.post("/api/bulk/issue_tracking", headers={
        **auth["admin"], "Content-Type": "application/x-ndjson"}, content=row).json()["id"]
    made = wait_for_job(client, job, auth["admin"])["results"][0]["file"]
    doc = f"/api/documents/{created}"
    everyone = {"admin", "auditor", "zhangwei", "lina", "wangqiang"}
    involved = {"zhangwei", "lina"}
    readers = {"admin", "auditor"}
    # (method, path, body, allowed callers, callers answered 404 instead of 403)
    table = [
        ("GET", "/api/health", None, everyone | {None}, set()),
        ("GET", "/api/templates", None, everyone | {None}, set()),
        ("GET", "/api/templates/{key}", None, everyone | {None}, set()),
        ("GET", "/api/parties", None, readers, set()),
        ("POST", "/api/parties", {"name": "", "dept": "", "email": "x"}, {"admin"}, set()),
        ("POST", "/api/documents", {"template": "issue_tracking", "data": {}, "parties": []},
         {"admin", "zhangwei", "lina", "wangqiang"}, set()),
        ("GET", "/api/documents/{document_id}", None, readers | involved, {"wangqiang"}),
        ("GET", "/api/documents/{document_id}/pdf", None, readers | involved, {"wangqiang"}),
        ("GET", "/api/blocking", None, everyone, set()),
        ("POST", "/api/documents/{document_id}/sign", {"passphrase": "wrong"}, involved,
         {"wangqiang"}),
        ("POST", "/api/documents/{document_id}/upload", b"junk", involved, {"wangqiang"}),
        ("POST", "/api/documents/{document_id}/decline", {"reason": " "}, involved,
         {"wangqiang"}),
        # The route lets writers through; the use case then refuses all but the creator.
        ("POST", "/api/documents/{document_id}/void", {"reason": " "}, {"admin", "zhangwei",
                                                                        "lina"}, {"wangqiang"}),
        ("POST", "/api/documents/{document_id}/close", None, {"admin"}, {"wangqiang"}),
        ("GET", "/api/documents", None, everyone, set()),
        ("POST", "/api/documents/{document_id}/reassign",
         {"field": "receiver", "to": "zhaomin", "reason": " "}, {"admin"} | involved,
         {"wangqiang"}),
        ("POST", "/api/documents/{document_id}/resolve", {"text": ""}, {"admin"} | involved,
         {"wangqiang"}),
        # Only the creator (the admin here) revises: the signers are refused by the use case.
        ("POST", "/api/documents/{document_id}/revise", {"data": {}}, {"admin"},
         {"wangqiang"}),
        ("GET", "/api/documents/{document_id}/certificate", None, readers | involved,
         {"wangqiang"}),
        ("GET", "/api/documents/{document_id}/bundle", None, readers | involved,
         {"wangqiang"}),
        ("POST", "/api/documents/{document_id}/hold", {"on": True}, {"admin"}, {"wangqiang"}),
        # A role no party has: 403 whatever the document, so it reveals nothing either.
        ("GET", "/api/documents/{document_id}/verify", None, readers, set()),
        ("POST", "/api/verify", b"junk", everyone, set()),
        ("GET", "/api/ledger/verify", None, readers, set()),
        ("POST", "/api/bulk/{template_key}", b"", {"admin"}, set()),
        ("GET", "/api/jobs/{job_id}", None, {"admin"}, set()),
        ("GET", "/api/jobs/{job_id}/files/{name}", None, {"admin"}, set()),
        ("GET", "/api/jobs/{job_id}/files.zip", None, {"admin"}, set()),
    ]
    # Routers are included as a whole (FastAPI's "bigger applications"): the schema lists
    # every route of every router.
    routes = {(method.upper(), path) for path, operations in client.app.openapi()["paths"].items()
              if path.startswith("/api") for method in operations}
    assert routes == {(m, p) for m, p, *_ in table}, "every API route is in the table"
    for method, path, body, allowed, hidden in table:
        url = (path.replace("{document_id}", created).replace("{key}", "issue_tracking")
               .replace("{template_key}", "issue_tracking").replace("{job_id}", job)
               .replace("{name}", quote(made)))
        for who in [*sorted(everyone), None]:
            headers = dict(auth[who]) if who else {}
            kwargs = {"json": body} if isinstance(body, dict) else {"content": body}
            if isinstance(body, bytes):
                headers["Content-Type"] = "application/pdf"
            response = client.request(method, url, headers=headers, **kwargs)
            if who in allowed:
                assert response.status_code not in (401, 403, 404), (method, path, who,
                                                                     response.text)
            elif who is None:
                assert response.status_code == 401, (method, path)
            else:
                expected = 404 if who in hidden else 403
                assert response.status_code == expected, (method, path, who, response.text)
    status = client.get(doc, headers=auth["admin"]).json()
    assert status["status"] == "awaiting_signatures" and status["signed"] == []
