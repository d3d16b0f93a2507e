"""The store on both backends — the filesystem folder and S3 (a real S3 API, moto_server on
loopback) — and what only Object Lock can do: refuse to delete an archive before its
retention date, keep it under legal hold, and refuse a bucket that cannot lock."""

from __future__ import annotations

import subprocess
from datetime import date, timedelta

import pytest
from botocore.exceptions import ClientError
from fastapi.testclient import TestClient

from api.app import create_app
from pipeline.config import Settings
from pipeline.people.setup import initialise
from pipeline.record.backends import open_store
from pipeline.record.s3store import S3Store, retention_moment
from pipeline.record.store import (
    Archival,
    FilesystemStore,
    MissingRevision,
    StoreMisconfigured,
    archive_path,
    sha256,
)
from tests.support.cli import COUNTERSIGN
from tests.support.s3 import cli_environment, s3_client, s3_settings

LATER = date.today() + timedelta(days=400)


@pytest.fixture(params=["filesystem", pytest.param("s3", marks=pytest.mark.slow)])
def store(request, tmp_path):
    """A ready store of each backend (the S3 one in a fresh bucket with Object Lock)."""
    if request.param == "filesystem":
        return open_store(Settings(data_dir=tmp_path / "data"))
    settings = s3_settings(tmp_path / "data", request.getfixturevalue("s3_endpoint"))
    store = open_store(settings)
    store.prepare()
    return store


def tamper(store, digest: str, data: bytes) -> None:
    """Change the bytes stored under ``digest`` the way someone with access would."""
    if isinstance(store, FilesystemStore):
        path = store.path(digest)
        path.chmod(0o644)
        path.write_bytes(data)
    else:
        store.client.put_object(Bucket=store.bucket, Key=store._key(digest), Body=data)


def test_put_get_verify_round_trip(store):
    data = b"%PDF-1.7 revision one"
    digest = store.put(data)
    assert digest == sha256(data)
    assert store.get(digest) == data
    assert store.verify(digest) is None
    assert store.put(data) == digest  # storing again is a no-op
    assert not store.is_archived(digest)
    missing = sha256(b"never stored")
    assert store.verify(missing) == "missing"
    with pytest.raises(MissingRevision):
        store.get(missing)


def test_archive_is_kept_under_its_folder_and_number(store):
    data = b"%PDF-1.7 closed minutes"
    path = f"项目文档-会议纪要/{archive_path('JY-2024-001', 'document.pdf')}"
    digest = store.put(data, archive=Archival(path, LATER))
    assert store.is_archived(digest)
    assert store.get(digest) == data
    assert store.archived("项目文档-会议纪要") == {path: data}
    assert store.put(data, archive=Archival(path, LATER)) == digest  # retried close: no-op
    assert store.archived("项目文档-会议纪要") == {path: data}
    package = path.replace("document.pdf", "package.json")
    store.put(b"{}", archive=Archival(package, LATER))
    assert store.archived("项目文档-会议纪要", after=path) == {package: b"{}"}
    assert store.archived("项目文档-会议纪要", after=package) == {}


def test_altered_bytes_are_named(store):
    digest = store.put(b"original", archive=Archival("folder/n/document.pdf", LATER))
    tamper(store, digest, b"forged")
    assert store.verify(digest) == "altered"


def test_archive_paths_cannot_escape():
    assert archive_path("2024-市场/销售-001", "a.pdf") == "2024-市场_销售-001/a.pdf"
    for bad in ("..", ".", "", "  "):
        with pytest.raises(Exception, match="invalid archive path"):
            archive_path(bad)


def test_hold_on_and_off_leaves_the_bytes(store):
    digest = store.put(b"archived", archive=Archival("f/1/package.json", LATER))
    store.set_hold(digest, "f/1/package.json", True)
    store.set_hold(digest, "f/1/package.json", False)
    assert store.get(digest) == b"archived" and store.verify(digest) is None
    with pytest.raises(MissingRevision):
        store.set_hold(sha256(b"not there"), None, True)


def test_filesystem_archive_is_read_only_and_linked(tmp_path):
    store = open_store(Settings(data_dir=tmp_path / "data"))
    digest = store.put(b"closed", archive=Archival("项目文档-需求确认/2024-市场-001/x.pdf", LATER))
    link = tmp_path / "data" / "archive" / "项目文档-需求确认" / "2024-市场-001" / "x.pdf"
    assert link.samefile(store.path(digest))  # one file, two names
    assert not store.path(digest).stat().st_mode & 0o222
    assert store.health() == {"backend": "filesystem", "ok": True,
                              "path": str(tmp_path / "data" / "store")}


# --- what only Object Lock does -------------------------------------------------------------


@pytest.mark.slow
def test_object_lock_refuses_deleting_an_archive_before_its_retention_date(tmp_path,
                                                                            s3_endpoint):
    store = open_store(s3_settings(tmp_path / "data", s3_endpoint))
    store.prepare()
    retain = date.today() + timedelta(days=3650)
    path = "项目文档-会议纪要/JY-2024-007/document.pdf"
    digest = store.put(b"%PDF final", archive=Archival(path, retain))
    attacker = s3_client(s3_endpoint)
    for key in (store._key(digest), store.prefix + path):
        head = attacker.head_object(Bucket=store.bucket, Key=key)
        assert head["ObjectLockMode"] == "COMPLIANCE"
        assert head["ObjectLockRetainUntilDate"] == retention_moment(retain)
        for bypass in ({}, {"BypassGovernanceRetention": True}):
            with pytest.raises(ClientError) as refused:
                attacker.delete_object(Bucket=store.bucket, Key=key,
                                       VersionId=head["VersionId"], **bypass)
            assert refused.value.response["Error"]["Code"] == "AccessDenied"
    # A delete without a version only hides the object behind a marker: the locked bytes
    # are still read, and verify names the attempt.
    attacker.delete_object(Bucket=store.bucket, Key=store._key(digest))
    assert store.get(digest) == b"%PDF final"
    assert store.verify(digest) == "hidden"
    # A foreign newer version does not replace what the ledger names either.
    attacker.put_object(Bucket=store.bucket, Key=store._key(digest), Body=b"%PDF forged")
    assert store.verify(digest) == "altered"
    assert store.get(digest) == b"%PDF final"


@pytest.mark.slow
def test_retention_is_extended_never_shortened(tmp_path, s3_endpoint):
    store = open_store(s3_settings(tmp_path / "data", s3_endpoint))
    store.prepare()
    later, sooner = date.today() + timedelta(days=900), date.today() + timedelta(days=30)
    digest = store.put(b"kept", archive=Archival("f/n/a.pdf", later))
    store.put(b"kept", archive=Archival("f/n/a.pdf", sooner))
    head = store.client.head_object(Bucket=store.bucket, Key=store._key(digest))
    assert head["ObjectLockRetainUntilDate"] == retention_moment(later)
    store.put(b"kept", archive=Archival("f/n/a.pdf", later + timedelta(days=10)))
    head = store.client.head_object(Bucket=store.bucket, Key=store._key(digest))
    assert head["ObjectLockRetainUntilDate"] == retention_moment(later + timedelta(days=10))


@pytest.mark.slow
def test_legal_hold_refuses_deletion_until_lifted(tmp_path, s3_endpoint):
    store = open_store(s3_settings(tmp_path / "data", s3_endpoint))
    store.prepare()
    # An object without retention, so that only the hold stands in the way.
    digest = store.put(b"evidence")
    key = store._key(digest)
    version = store.client.head_object(Bucket=store.bucket, Key=key)["VersionId"]
    attacker = s3_client(s3_endpoint)
    store.set_hold(digest, None, True)
    assert store.legal_hold(digest)
    with pytest.raises(ClientError, match="AccessDenied"):
        attacker.delete_object(Bucket=store.bucket, Key=key, VersionId=version)
    store.set_hold(digest, None, False)
    assert not store.legal_hold(digest)
    attacker.delete_object(Bucket=store.bucket, Key=key, VersionId=version)
    assert store.verify(digest) == "missing"


@pytest.mark.slow
def test_init_creates_a_locked_bucket_and_refuses_one_without_lock(tmp_path, s3_endpoint):
    settings = s3_settings(tmp_path / "data", s3_endpoint)
    store = open_store(settings)
    assert isinstance(store, S3Store)
    assert store.health()["ok"] is False  # no bucket yet
    initialise(settings)
    lock = s3_client(s3_endpoint).get_object_lock_configuration(Bucket=store.bucket)
    assert lock["ObjectLockConfiguration"]["ObjectLockEnabled"] == "Enabled"
    assert store.health() | {"problem": None} == {
        "backend": "s3", "bucket": store.bucket, "prefix": "countersign/",
        "endpoint": s3_endpoint, "object_lock": True, "ok": True, "problem": None}
    initialise(settings)  # again: the bucket is kept as it is

    s3_client(s3_endpoint).create_bucket(Bucket="plain-bucket")
    plain = s3_settings(tmp_path / "plain" / "data", s3_endpoint, bucket="plain-bucket")
    with pytest.raises(StoreMisconfigured, match="no Object Lock"):
        initialise(plain)
    assert not plain.data_dir.exists()  # refused before anything was made
    assert open_store(plain).health()["ok"] is False
    env = {"PATH": "/usr/bin:/bin", **cli_environment(plain)}
    result = subprocess.run([COUNTERSIGN, "--data-dir", str(plain.data_dir), "init"],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "plain-bucket has no Object Lock" in result.stderr


def test_a_store_url_that_is_not_s3_or_a_folder_is_refused(tmp_path):
    for url in ("ftp://x", "s3://", "s3:// bad", "file://relative/path", "file:///"):
        with pytest.raises(StoreMisconfigured, match="COUNTERSIGN_STORE_URL"):
            open_store(Settings(data_dir=tmp_path, store_url=url))


def test_health_reports_database_store_and_libreoffice(tmp_path):
    settings = Settings(data_dir=tmp_path / "data")
    health = TestClient(create_app(settings)).get("/api/health").json()  # no lifespan: no pool
    assert health["status"] == "ok" and health["ready"] is False
    assert health["database"] == {"backend": "sqlite", "ok": True,
                                  "path": str(settings.database_path), "events": 0,
                                  "anchored_through": 0}
    assert health["store"] == {"backend": "filesystem", "ok": True,
                               "path": str(settings.data_dir / "store")}
    assert health["libreoffice"] == {"ok": False, "starting": True}
    assert {"version", "templates"} <= set(health)
