"""Past one machine, end to end: two ``countersign serve`` processes and a ``countersign
worker``, each with an empty data folder of its own, share one PostgreSQL database and one S3
bucket (moto_server). Two parties sign through the two servers at once, a job closes the
document into Object Lock, and a server killed with SIGKILL in the middle of a bulk job does
not stop the job from finishing — every row exactly once, its PDFs handed out by the other
server, the chain intact."""

from __future__ import annotations

import hashlib
import io
import json
import signal
import subprocess
import zipfile
from concurrent.futures import ThreadPoolExecutor
from datetime import date

import httpx
import pytest
from botocore.exceptions import ClientError

from pipeline.documents.repository import revision_store
from pipeline.jobs.record import report
from pipeline.people.access import create_token
from pipeline.people.setup import initialise
from pipeline.record.s3store import retention_moment
from tests.support.cli import COUNTERSIGN, environment
from tests.support.forms import example
from tests.support.s3 import cli_environment, s3_client, s3_settings
from tests.support.service import service_process, wait_until, worker_process

pytestmark = pytest.mark.slow

ROWS = 12


@pytest.fixture
def deployment(tmp_path, s3_endpoint, postgres_database):
    """The first machine's settings (its data folder initialised the shared database and
    bucket) and the environment every process of the deployment runs with."""
    settings = s3_settings(tmp_path / "a" / "data", s3_endpoint,
                           database_url=postgres_database)
    initialise(settings)
    env = environment(settings, **cli_environment(settings), COUNTERSIGN_POOL_SIZE="1",
                      COUNTERSIGN_PASSPHRASE="demo", COUNTERSIGN_JOB_LEASE="15")
    return settings, env


def test_two_servers_and_a_worker_share_postgresql_and_s3(deployment, tmp_path):
    settings, env = deployment
    tokens = {who: {"Authorization": f"Bearer {create_token(settings, role, party)}"}
              for who, role, party in (("admin", "admin", None),
                                       ("wangqiang", "party", "wangqiang"),
                                       ("zhangwei", "party", "zhangwei"),
                                       ("lina", "party", "lina"))}
    first_dir, second_dir = tmp_path / "first", tmp_path / "second"
    with service_process(first_dir, env, args=("--with-worker",)) as (first, a), \
            service_process(second_dir, env) as (_, b):
        form = example("progress_sync")
        form["support_requests"].append({"dept": "产品部", "content": "评审",
                                         "due": "2024-05-26"})
        created = httpx.post(f"{a}/api/documents", headers=tokens["admin"], timeout=120, json={
            "template": "progress_sync", "data": form,
            "parties": [{"role": "responsible", "party": "wangqiang"},
                        {"role": "supporter", "party": "zhangwei"},
                        {"role": "supporter", "party": "lina"}]})
        assert created.status_code == 201, created.text
        doc = f"/api/documents/{created.json()['id']}"
        signed = httpx.post(f"{b}{doc}/sign", headers=tokens["wangqiang"], timeout=120,
                            json={"passphrase": "demo"})
        assert signed.status_code == 200, signed.text

        # The two supporters sign at the same moment, one through each server.
        def sign(base: str, party: str) -> httpx.Response:
            return httpx.post(f"{base}{doc}/sign", headers=tokens[party], timeout=300,
                              json={"passphrase": "demo"})

        with ThreadPoolExecutor(2) as both:
            answers = list(both.map(sign, (a, b), ("zhangwei", "lina")))
        assert [r.status_code for r in answers] == [200, 200], [r.text for r in answers]
        status = httpx.get(f"{a}{doc}", headers=tokens["admin"], timeout=30).json()
        assert status["status"] == "completed"
        assert {s["party"] for s in status["signed"]} == {"wangqiang", "zhangwei", "lina"}

        # Closed as a job through the second server; the first server's consumer runs it.
        queued = httpx.post(f"{b}{doc}/close", timeout=30,
                            headers={**tokens["admin"], "Prefer": "respond-async"})
        assert queued.status_code == 202, queued.text
        job_url = f"{b}/api/jobs/{queued.json()['id']}"
        job = wait_until(lambda: (j := httpx.get(job_url, headers=tokens["admin"],
                                                 timeout=10).json())["status"]
                         in ("done", "failed") and j, 300, "the close job")
        assert job["status"] == "done" and job["result"]["status"] == "closed", job
        closed = httpx.get(f"{a}{doc}", headers=tokens["admin"], timeout=30).json()
        store = revision_store(settings)
        package = json.loads(store.get(closed["archive"]))
        attacker = s3_client(settings.s3_endpoint)
        key = store._key(closed["revision"])
        head = attacker.head_object(Bucket=store.bucket, Key=key)
        assert head["ObjectLockMode"] == "COMPLIANCE"
        assert head["ObjectLockRetainUntilDate"] == retention_moment(
            date.fromisoformat(package["retain_until"]))
        with pytest.raises(ClientError, match="AccessDenied"):
            attacker.delete_object(Bucket=store.bucket, Key=key, VersionId=head["VersionId"])

        # A bulk job accepted and started by the first server, which is then killed.
        rows = "\n".join([json.dumps(example("issue_tracking"), ensure_ascii=False)] * ROWS)
        accepted = httpx.post(f"{a}/api/bulk/issue_tracking", content=(rows + "\n").encode(),
                              headers={**tokens["admin"],
                                       "Content-Type": "application/x-ndjson"}, timeout=60)
        assert accepted.status_code == 202, accepted.text
        job_id = accepted.json()["id"]
        wait_until(lambda: report(settings, job_id)["done"] >= 2, 300, "two bulk rows")
        first.send_signal(signal.SIGKILL)
        first.wait(30)
        assert report(settings, job_id)["status"] == "running"

        # A worker on a third machine picks the job up; the second server reports its end.
        with worker_process(tmp_path / "third", env):
            job = wait_until(lambda: (j := httpx.get(f"{b}/api/jobs/{job_id}",
                                                     headers=tokens["admin"],
                                                     timeout=10).json())["status"]
                             in ("done", "failed") and j, 600, "the bulk job's end")
        assert job["status"] == "done", job
        assert job["done"] == job["total"] == job["succeeded"] == ROWS
        assert sorted(row["line"] for row in job["results"]) == list(range(1, ROWS + 1))
        assert job["attempts"] == 2
        # Its PDFs, made by the killed server and the worker, come from the second server.
        for row in job["results"]:
            pdf = httpx.get(f"{b}{row['url']}", headers=tokens["admin"], timeout=30)
            assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF-"), pdf.text
            assert hashlib.sha256(pdf.content).hexdigest() == row["sha256"]
        packed = httpx.get(f"{b}{job['zip']}", headers=tokens["admin"], timeout=60)
        assert len(zipfile.ZipFile(io.BytesIO(packed.content)).namelist()) == ROWS
        health = httpx.get(f"{b}/api/health", timeout=10).json()
        assert health["database"]["backend"] == "postgresql" and health["database"]["ok"]
        assert health["store"]["backend"] == "s3" and health["store"]["ok"]

    # Any machine verifies the one chain all three wrote to.
    verified = subprocess.run([COUNTERSIGN, "--data-dir", str(tmp_path / "fourth"), "ledger",
                               "verify", "--json"], capture_output=True, text=True, env=env,
                              timeout=300)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert json.loads(verified.stdout)["ok"]
    # No key material on the servers' or the worker's own disks, and no bulk PDF on the
    # worker's (the killed server may have left a scratch PDF that its end cut off).
    for folder in (first_dir, second_dir, tmp_path / "third"):
        found = [p.name for p in folder.rglob("*") if p.is_file()
                 and (p.suffix in (".p12", ".key") or p.name == "passphrase")]
        assert found == [], found
    assert not [p.name for p in (tmp_path / "third").rglob("*.pdf")]
