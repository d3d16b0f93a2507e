"""A bulk job's PDFs are kept in the store (``bulk/``, by SHA-256, never locked) and handed
out by any server: a second app instance that shares the database and the store — a folder
shared by path, or an S3 bucket (moto_server) — but not the data folder downloads each file
and the ZIP of them all, on SQLite and on PostgreSQL, with the real LibreOffice. Unknown
jobs and files answer 404 JSON; only callers who may see a job read its files."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import zipfile
from dataclasses import replace
from pathlib import Path
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from pipeline.config import Settings
from pipeline.jobs.bulk import accept_bulk, scratch_root, sweep_scratch
from pipeline.jobs.identity import Owner
from pipeline.jobs.outputs import UnknownJob, job_file, seen_job
from pipeline.jobs.queue import close_shared_queues
from pipeline.jobs.record import JobKind, JobSpec, report, stamp, submit, utc_now
from pipeline.jobs.tasks import JobContext, run_job
from pipeline.people.access import Principal, Role, create_token
from pipeline.people.setup import initialise
from pipeline.record import database
from pipeline.record import jobs as records
from pipeline.record.backends import open_store
from pipeline.record.engine import run
from pipeline.record.store import FilesystemStore, MissingRevision, sha256
from tests.support.data import initialised
from tests.support.forms import example
from tests.support.s3 import CA_PASSPHRASE, s3_client, s3_settings

PDF = b"%PDF-1.7\n" + bytes(range(256)) * 600 + b"\n%%EOF\n"  # > one 64 KiB piece
NAME = "2024-质量部-草稿-1.pdf"


def bearer(settings: Settings, role: str = "admin", party: str | None = None) -> dict:
    return {"Authorization": f"Bearer {create_token(settings, role, party)}"}


def shared_settings(first: Settings, data_dir: Path) -> Settings:
    """Return the settings of a second machine: its own data folder, the first one's
    database and store."""
    return Settings(data_dir=data_dir, database_url=first.database_url or str(first.database),
                    store_url=first.store_url, s3_endpoint=first.s3_endpoint,
                    s3_region=first.s3_region, aws_access_key_id=first.aws_access_key_id,
                    aws_secret_access_key=first.aws_secret_access_key,
                    ca_passphrase=first.ca_passphrase)


@pytest.fixture
def machines(tmp_path):
    """Two machines on the embedded database file and a store folder shared by path."""
    first = initialised(tmp_path / "a", store_url=f"file://{tmp_path / 'shared'}",
                        ca_passphrase=CA_PASSPHRASE)
    yield first, shared_settings(first, tmp_path / "b")
    close_shared_queues()


def finished_job(settings: Settings, rows: list[dict], created_by: str = "admin:ops") -> str:
    """Record a bulk job with ``rows`` finished ({line, file?, data?, error?}), the bytes
    put in the store as a worker does; return its id."""
    job_id = submit(settings, JobSpec(JobKind.BULK, {"template": "issue_tracking"},
                                      total=len(rows), data=b"",
                                      created_by=created_by))["id"]
    store = open_store(settings)
    with database.connection(settings.database) as conn:
        for row in rows:
            data = row.pop("data", None)
            if data is not None:
                row["sha256"] = store.put_bulk(data)
            records.record_row(conn, job_id, row, stamp(utc_now()))
    return job_id


# --- fast: the store's bulk namespace, the routes, who may read -----------------------------


def test_bulk_outputs_are_stored_once_apart_from_documents(machines):
    first, _ = machines
    store = open_store(first)
    assert isinstance(store, FilesystemStore)
    digest = store.put_bulk(PDF)
    path = store.bulk_path(digest)
    before = path.stat()
    assert store.put_bulk(PDF) == digest == sha256(PDF)
    after = path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert path.is_relative_to(Path(first.store_url.removeprefix("file://")) / "bulk")
    assert store.get_bulk(digest) == PDF
    # Not a revision, not archived, writable by its owner (never locked).
    with pytest.raises(MissingRevision):
        store.get(digest)
    assert store.verify(digest) == "missing" and not store.is_archived(digest)
    assert path.stat().st_mode & 0o200
    path.write_bytes(b"%PDF-1.7 forged")
    with pytest.raises(MissingRevision, match="bulk output"):
        store.get_bulk(digest)


def test_a_second_server_hands_out_the_files_and_the_zip(machines):
    first, second = machines
    job_id = finished_job(first, [
        {"line": 1, "number": "2024-质量部-草稿", "file": NAME, "data": PDF},
        {"line": 2, "error": "due: 不是日期 / not a date"},
        {"line": 3, "number": "2024-质量部-草稿", "file": "2024-质量部-草稿-3.pdf",
         "data": PDF[:-8] + b"3\n%%EOF\n"}])
    client, token = TestClient(create_app(second)), bearer(first)

    job = client.get(f"/api/jobs/{job_id}", headers=token).json()
    assert [row["file"] for row in job["results"]] == [NAME, None, "2024-质量部-草稿-3.pdf"]
    assert job["results"][0]["sha256"] == sha256(PDF)
    assert job["results"][0]["url"] == f"/api/jobs/{job_id}/files/{quote(NAME)}"
    assert job["results"][1]["url"] is None and job["created_by"] == "admin:ops"

    got = client.get(job["results"][0]["url"], headers=token)
    assert got.status_code == 200, got.text
    assert got.content == PDF and got.headers["content-type"] == "application/pdf"
    assert got.headers["etag"] == f'"{sha256(PDF)}"'
    assert f"filename*=UTF-8''{quote(NAME)}" in got.headers["content-disposition"]

    packed = client.get(job["zip"], headers=token)
    assert packed.status_code == 200 and packed.headers["content-type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(packed.content))
    assert archive.namelist() == [NAME, "2024-质量部-草稿-3.pdf"]
    assert archive.read(NAME) == PDF and archive.testzip() is None
    # Info-ZIP agrees (entries written as they are streamed, sizes after the bytes).
    (second.data_dir.parent / "files.zip").write_bytes(packed.content)
    checked = subprocess.run(["unzip", "-t", str(second.data_dir.parent / "files.zip")],
                             capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0 and "No errors detected" in checked.stdout, checked.stdout


def test_unknown_jobs_and_files_answer_404_json(machines):
    first, second = machines
    job_id = finished_job(first, [{"line": 1, "number": "n", "file": NAME, "data": PDF},
                                  # a row finished before files were kept in the store
                                  {"line": 2, "number": "n", "file": "old-2.pdf"}])
    client, token = TestClient(create_app(second)), bearer(first)
    for url, code in ((f"/api/jobs/job-0000000000000000/files/{quote(NAME)}", "unknown_job"),
                      ("/api/jobs/job-0000000000000000/files.zip", "unknown_job"),
                      (f"/api/jobs/{job_id}/files/nope.pdf", "unknown_file"),
                      (f"/api/jobs/{job_id}/files/..%2Fcountersign.db", "unknown_file"),
                      (f"/api/jobs/{job_id}/files/old-2.pdf", "file_not_stored")):
        answer = client.get(url, headers=token)
        assert answer.status_code == 404, (url, answer.text)
        assert answer.json()["code"] == code and answer.json()["en"], url
    # Stored bytes that no longer have their hash are refused, never sent (and no 500).
    store = open_store(first)
    store.bulk_path(sha256(PDF)).write_bytes(b"%PDF-1.7 forged")
    answer = client.get(f"/api/jobs/{job_id}/files/{quote(NAME)}", headers=token)
    assert answer.status_code == 422 and answer.json()["code"] == "missing_revision"
    assert client.get(f"/api/jobs/{job_id}/files.zip", headers=token).status_code == 422


def test_only_callers_who_may_see_the_job_read_its_files(machines):
    first, second = machines
    job_id = finished_job(first, [{"line": 1, "number": "n", "file": NAME, "data": PDF}])
    client = TestClient(create_app(second))
    urls = (f"/api/jobs/{job_id}", f"/api/jobs/{job_id}/files/{quote(NAME)}",
            f"/api/jobs/{job_id}/files.zip")
    for url in urls:
        assert client.get(url).status_code == 401
        for role, party in (("party", "lina"), ("party", "zhangwei"), ("auditor", None)):
            refused = client.get(url, headers=bearer(first, role, party))
            assert refused.status_code == 403 and refused.json()["code"] == "forbidden", url
            assert PDF[:200] not in refused.content
        # Any administrator may (bulk is an administrator's action).
        assert client.get(url, headers=bearer(first, "admin")).status_code == 200
    # Were a party allowed to submit bulk jobs, it would see its own jobs and no other's:
    # another's answers exactly like a job that does not exist.
    lina = Principal(Role.PARTY, "lina", "")
    with pytest.raises(UnknownJob) as hidden:
        job_file(first, lina, job_id, NAME)
    with pytest.raises(UnknownJob) as missing:
        seen_job(first, lina, "job-0000000000000000")
    assert str(hidden.value).replace(job_id, "X") == str(missing.value).replace(
        "job-0000000000000000", "X")
    own = finished_job(first, [{"line": 1, "number": "n", "file": NAME, "data": PDF}],
                       created_by="lina")
    assert job_file(first, lina, own, NAME).data == PDF


def test_scratch_folders_of_jobs_that_are_over_are_swept(machines):
    first, _ = machines
    over = finished_job(first, [])
    with database.connection(first.database) as conn:
        run(conn, "UPDATE jobs SET status = 'done' WHERE id = :id", {"id": over})
    running = submit(first, JobSpec(JobKind.BULK, {"template": "issue_tracking"}, total=1,
                                    data=b""))["id"]
    root = scratch_root(first)
    for name in (f"{over}-x1", f"{running}-x2", "job-deadbeefdeadbeef-x3", "unrelated"):
        (root / name).mkdir(parents=True)
        (root / name / "row.pdf").write_bytes(PDF)
    taken = submit(first, JobSpec(JobKind.BULK, {"template": "issue_tracking"}, total=1,
                                  data=b""))["id"]
    (root / f"{taken}-x4").mkdir()  # left by a killed run of the job being taken over
    assert sorted(sweep_scratch(first, taking=taken)) == sorted(
        [f"{over}-x1", "job-deadbeefdeadbeef-x3", f"{taken}-x4"])
    assert sorted(p.name for p in root.iterdir()) == sorted([f"{running}-x2", "unrelated"])


# --- slow: real LibreOffice, both databases, both stores -------------------------------------


@pytest.fixture(params=["sqlite-file", "sqlite-s3", "postgresql-file", "postgresql-s3"])
def two_machines(request, tmp_path):
    """A first machine (which runs the job) and a second (which answers for it), sharing
    the database (SQLite file or PostgreSQL) and the store (a folder or an S3 bucket)."""
    database_kind, store_kind = request.param.split("-")
    options = {"ca_passphrase": CA_PASSPHRASE}
    if database_kind == "postgresql":
        options["database_url"] = request.getfixturevalue("postgres_database")
    if store_kind == "s3":
        base = s3_settings(tmp_path / "a", request.getfixturevalue("s3_endpoint"))
        options.update(store_url=base.store_url, s3_endpoint=base.s3_endpoint,
                       s3_region=base.s3_region, aws_access_key_id=base.aws_access_key_id,
                       aws_secret_access_key=base.aws_secret_access_key)
    else:
        options["store_url"] = f"file://{tmp_path / 'shared'}"
    first = initialised(tmp_path / "a", **options)
    yield first, shared_settings(first, tmp_path / "b")
    close_shared_queues()


@pytest.mark.slow
def test_a_bulk_job_run_on_one_machine_is_downloaded_from_another(two_machines, pool):
    first, second = two_machines
    rows = [example("issue_tracking"), {"description": "缺少字段"}, example("issue_tracking")]
    rows[2]["responsible_dept"] = "信息部"
    rows_file = first.data_dir / "rows.jsonl"
    rows_file.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n",
                         encoding="utf-8")
    accepted = TestClient(create_app(first)).post(
        "/api/bulk/issue_tracking", content=rows_file.read_bytes(),
        headers={**bearer(first), "Content-Type": "application/x-ndjson"})
    assert accepted.status_code == 202, accepted.text
    job_id = accepted.json()["id"]

    run_job(JobContext(first, Owner.this_process(), lambda: pool), job_id)
    job = report(first, job_id)
    assert (job["status"], job["succeeded"], job["failed"]) == ("done", 2, 1), job
    # The worker's scratch is gone: the files live only in the store now.
    assert not any(scratch_root(first).iterdir())
    assert not any(p.suffix == ".pdf" for p in first.data_dir.rglob("*"))

    client, token = TestClient(create_app(second)), bearer(first)
    seen = client.get(f"/api/jobs/{job_id}", headers=token).json()
    assert seen["status"] == "done" and seen["results"][1]["file"] is None
    files = {}
    for row in (seen["results"][0], seen["results"][2]):
        got = client.get(row["url"], headers=token)
        assert got.status_code == 200, got.text
        assert got.content.startswith(b"%PDF-") and b"%%EOF" in got.content[-32:]
        assert hashlib.sha256(got.content).hexdigest() == row["sha256"]
        files[row["file"]] = got.content
    assert len(set(files.values())) == 2  # two rows, two documents
    packed = zipfile.ZipFile(io.BytesIO(client.get(seen["zip"], headers=token).content))
    assert {name: packed.read(name) for name in packed.namelist()} == files

    if first.store_url.startswith("s3://"):
        s3 = s3_client(first.s3_endpoint)
        store = open_store(first)
        for row in (seen["results"][0], seen["results"][2]):
            key = store._bulk_key(row["sha256"])
            head = s3.head_object(Bucket=store.bucket, Key=key)
            assert "ObjectLockMode" not in head and "ObjectLockLegalHoldStatus" not in head
            store.put_bulk(files[row["file"]])  # stored already: not written again
            versions = s3.list_object_versions(Bucket=store.bucket, Prefix=key)["Versions"]
            assert len(versions) == 1
        # Nothing went into an archive folder.
        listed = s3.list_objects_v2(Bucket=store.bucket, Prefix=store.prefix)["Contents"]
        top = {item["Key"][len(store.prefix):].split("/")[0] for item in listed}
        assert "bulk" in top and top <= {"bulk", "keys", "objects", "ledger-anchors"}


@pytest.mark.slow
def test_a_row_the_store_refuses_is_made_again_by_the_next_take(tmp_path, s3_endpoint, pool):
    settings = s3_settings(tmp_path / "data", s3_endpoint)
    initialise(settings)
    rows_file = tmp_path / "rows.jsonl"
    rows_file.write_text(json.dumps(example("issue_tracking"), ensure_ascii=False) + "\n",
                         encoding="utf-8")
    job_id = accept_bulk(settings, "issue_tracking", rows_file)["id"]
    # The bucket is not there (yet): the PDF is made, not stored, and its row not recorded.
    gone = replace(settings, store_url="s3://bulkfiles-not-made-yet/x")
    owner = Owner.this_process()
    run_job(JobContext(gone, owner, lambda: pool), job_id)
    job = report(settings, job_id)
    assert (job["status"], job["done"], job["results"]) == ("running", 0, []), job
    assert not [p for p in scratch_root(settings).iterdir()]  # its scratch went with it
    # Taken again (as the recovery pass does once the lease passes), with a store that
    # answers: the row is made and recorded.
    open_store(gone).prepare()
    with database.connection(settings.database) as conn:
        assert records.requeue_job(conn, job_id, owner.id, stamp(utc_now()))
    run_job(JobContext(gone, owner, lambda: pool), job_id)
    job = report(settings, job_id)
    assert (job["status"], job["succeeded"], job["attempts"]) == ("done", 1, 2), job
    assert open_store(gone).get_bulk(job["results"][0]["sha256"]).startswith(b"%PDF-")
