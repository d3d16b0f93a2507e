"""A document's archive on both stores, end to end with real conversion and signatures:
filed under the template's archive folder, kept until the retention date (Object Lock in
S3), held and released, the ledger head anchored along the way."""

from __future__ import annotations

import json
import os
import subprocess
from datetime import date

import pytest
from botocore.exceptions import ClientError
from fastapi.testclient import TestClient

from api.app import create_app
from pipeline.config import Settings
from pipeline.documents.close import close_document
from pipeline.documents.create import create_document
from pipeline.documents.repository import document_events, revision_store, verify_ledger
from pipeline.documents.sign import sign_document
from pipeline.people.setup import initialise
from pipeline.record.s3store import retention_moment
from pipeline.record.store import sha256
from tests.support.cli import COUNTERSIGN
from tests.support.forms import example
from tests.support.s3 import cli_environment, s3_client, s3_settings

pytestmark = pytest.mark.slow


@pytest.fixture(params=["filesystem", "s3"])
def deployment(request, tmp_path):
    """(settings, admin token, CLI environment) of a fresh install on each store, anchoring
    the ledger head every four events."""
    anchoring = {"anchor_every_events": 4, "anchor_every_minutes": 0}
    if request.param == "s3":
        settings = s3_settings(tmp_path / "data", request.getfixturevalue("s3_endpoint"),
                               **anchoring)
    else:
        settings = Settings(data_dir=tmp_path / "data", **anchoring)
    admin = initialise(settings).demo_tokens["admin"]
    env = {**os.environ, **cli_environment(settings), "COUNTERSIGN_ANCHOR_EVERY_EVENTS": "4",
           "COUNTERSIGN_ANCHOR_EVERY_MINUTES": "0"}
    return settings, admin, env


def cli(settings: Settings, env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([COUNTERSIGN, "--data-dir", str(settings.data_dir), *args],
                          capture_output=True, text=True, env=env, timeout=300)


def test_archive_retention_hold_and_anchors(deployment, pool):
    settings, admin, env = deployment
    doc = create_document(settings, "requirement_confirmation",
                          example("requirement_confirmation"),
                          [("requester", "zhangwei"), ("receiver", "lina")], pool).id
    refused = cli(settings, env, "hold", doc, "on")
    assert refused.returncode == 2 and "not archived yet" in refused.stderr
    sign_document(settings, doc, "zhangwei", "demo")
    sign_document(settings, doc, "lina", "demo")
    closed = close_document(settings, doc, pool)
    store = revision_store(settings)
    package = json.loads(store.get(closed.archive))

    folder = f"项目文档-需求确认/{closed.number}"
    filed = store.archived("项目文档-需求确认")
    assert {path: sha256(data) for path, data in filed.items()} == {
        f"{folder}/document.pdf": closed.revision,
        f"{folder}/certificate.pdf": package["certificate_of_completion"],
        f"{folder}/package.json": closed.archive}
    objects = {digest: path for path, digest in
               ((p, sha256(d)) for p, d in filed.items())}

    if store.backend == "s3":
        attacker = s3_client(settings.s3_endpoint)
        keys = [store._key(d) for d in objects] + [store.prefix + p for p in objects.values()]
        for key in keys:
            head = attacker.head_object(Bucket=store.bucket, Key=key)
            assert head["ObjectLockMode"] == "COMPLIANCE"
            assert head["ObjectLockRetainUntilDate"] == retention_moment(
                date.fromisoformat(package["retain_until"]))
            with pytest.raises(ClientError, match="AccessDenied"):
                attacker.delete_object(Bucket=store.bucket, Key=key,
                                       VersionId=head["VersionId"])
    else:
        for digest in objects:
            assert not store.path(digest).stat().st_mode & 0o222

    held = cli(settings, env, "hold", doc, "on", "--json")
    assert held.returncode == 0, held.stderr
    assert json.loads(held.stdout)["legal_hold"] is True
    assert cli(settings, env, "hold", doc, "on").returncode == 0  # again: nothing new
    if store.backend == "s3":
        for key in keys:
            head = attacker.head_object(Bucket=store.bucket, Key=key)
            assert head["ObjectLockLegalHoldStatus"] == "ON"

    client = TestClient(create_app(settings))
    bearer = {"Authorization": f"Bearer {admin}"}
    lifted = client.post(f"/api/documents/{doc}/hold", json={"on": False}, headers=bearer)
    assert lifted.status_code == 200 and lifted.json()["legal_hold"] is False
    if store.backend == "s3":
        for key in keys:
            head = attacker.head_object(Bucket=store.bucket, Key=key)
            assert head.get("ObjectLockLegalHoldStatus") == "OFF"
    kinds = [e["kind"] for e in document_events(settings, doc)]
    assert kinds[-2:] == ["hold-set", "hold-lifted"]

    health = client.get("/api/health").json()
    assert health["status"] == "ok"
    assert health["database"]["ok"] and health["database"]["anchored_through"] >= 4
    assert health["store"] | {"ok": True} == health["store"]
    assert health["store"]["backend"] == store.backend
    assert health["libreoffice"] == {"ok": False, "starting": True}  # no pool in this app

    # Anchored along the way (every four events), and everything still verifies.
    report = verify_ledger(settings)
    assert report.ok, report.problems
    assert report.anchors >= 2 and report.anchored_through >= 8
    assert report.revisions >= 6
