"""Jobs survive the processes that run them, end to end with real LibreOffice, on SQLite and
on PostgreSQL: a server killed with SIGKILL in the middle of a bulk job finishes it after a
restart, and workers stopped (SIGTERM) or killed (SIGKILL) mid-job hand it on — every row
produced exactly once and kept in the store, the rows finished before the kill never made
or stored again, no scratch folder and no LibreOffice left behind."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import httpx
import pytest

from pipeline.config import Settings
from pipeline.jobs.bulk import accept_bulk, scratch_root
from pipeline.jobs.record import report
from pipeline.people.access import create_token
from pipeline.record import database
from pipeline.record import jobs as records
from pipeline.record.backends import open_store
from tests.support.cli import environment
from tests.support.forms import example
from tests.support.processes import descendants
from tests.support.service import output_of, service_process, wait_until, worker_process

pytestmark = pytest.mark.slow

ROWS = 16


@pytest.fixture
def settings(backend_settings: Settings) -> Settings:
    return backend_settings


def rows_text(count: int = ROWS) -> str:
    row = json.dumps(example("issue_tracking"), ensure_ascii=False)
    return "\n".join([row] * count) + "\n"


def recorded_files(settings: Settings, job_id: str) -> dict[str, tuple[str, int, int]]:
    """Return {file name: (SHA-256, inode, mtime)} of the rows recorded as finished so
    far, their PDFs as the store (the data folder's) keeps them."""
    with database.connection(settings.database) as conn:
        rows = records.select_rows(conn, job_id)
    store = open_store(settings)
    found = {}
    for row in rows:
        assert row["error"] is None and row["sha256"], row
        stat = store.bulk_path(row["sha256"]).stat()
        found[row["file"]] = (row["sha256"], stat.st_ino, stat.st_mtime_ns)
    return found


def assert_every_row_once(settings: Settings, job_id: str,
                          before: dict[str, tuple[str, int, int]]) -> dict:
    job = report(settings, job_id)
    assert job["status"] == "done", job
    assert job["done"] == job["total"] == ROWS and job["succeeded"] == ROWS
    assert [row["line"] for row in job["results"]] == list(range(1, ROWS + 1))
    assert len({row["file"] for row in job["results"]}) == ROWS
    store = open_store(settings)
    assert all(store.get_bulk(row["sha256"]).startswith(b"%PDF-") for row in job["results"])
    after = recorded_files(settings, job_id)
    # What was finished before the kill was not made again: same hash, the stored file
    # untouched.
    assert {name: after[name] for name in before} == before
    # The runs' scratch folders are gone, the killed run's too.
    assert not [p.name for p in scratch_root(settings).iterdir() if p.name.startswith(job_id)]
    return job


def helper_processes(pid: int) -> list[int]:
    return [proc.pid for proc in descendants(pid) if proc.alive]


def still_running(pids: list[int]) -> list[int]:
    alive = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state not in ("Z", "X"):
            alive.append(pid)
    return alive


def test_a_server_killed_mid_bulk_finishes_the_job_after_a_restart(settings):
    token = {"Authorization": f"Bearer {create_token(settings, 'admin')}"}
    env = environment(settings, COUNTERSIGN_POOL_SIZE="1")
    # With PostgreSQL a server consumes only when asked (workers do it otherwise).
    args = ("--with-worker",) if settings.database_url else ()
    with service_process(settings.data_dir, env, args=args) as (server, base):
        accepted = httpx.post(f"{base}/api/bulk/issue_tracking", content=rows_text().encode(),
                              headers={**token, "Content-Type": "application/x-ndjson"},
                              timeout=30)
        assert accepted.status_code == 202, accepted.text
        job_id = accepted.json()["id"]
        wait_until(lambda: report(settings, job_id)["done"] >= 3, 180, "three rows")
        helpers = helper_processes(server.pid)
        server.send_signal(signal.SIGKILL)
        server.wait(30)
    before = recorded_files(settings, job_id)
    assert 3 <= len(before) < ROWS
    assert report(settings, job_id)["status"] == "running"  # its holder is gone
    wait_until(lambda: not still_running(helpers), 30,
               "the end of the killed server's LibreOffice and helper processes",
               lambda: "\n".join(Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ")
                                 for pid in still_running(helpers)))

    with service_process(settings.data_dir, env, args=args) as (_, base):
        def over():
            job = httpx.get(f"{base}/api/jobs/{job_id}", headers=token, timeout=10).json()
            return job if job["status"] in ("done", "failed") else None

        wait_until(over, 300, "the job's end")
        job = assert_every_row_once(settings, job_id, before)
        assert job["attempts"] == 2
        health = httpx.get(f"{base}/api/health", timeout=10).json()["queue"]
        assert health["ok"] and health["consuming"] and health["stalled"] == 0


def test_workers_stopped_or_killed_mid_bulk_hand_the_job_on(settings, tmp_path):
    env = environment(settings, COUNTERSIGN_POOL_SIZE="1")
    rows = tmp_path / "rows.jsonl"
    rows.write_text(rows_text(), encoding="utf-8")
    job_id = accept_bulk(settings, "issue_tracking", rows)["id"]

    # A worker stopped with SIGTERM: it hands the job back at once and takes LibreOffice along.
    with worker_process(settings.data_dir, env, ("--concurrency", "1")) as first:
        wait_until(lambda: report(settings, job_id)["done"] >= 2, 180, "two rows",
                   lambda: output_of(first))
        helpers = helper_processes(first.pid)
        assert helpers
        first.send_signal(signal.SIGTERM)
        assert first.wait(90) == 0, output_of(first)
        assert "1 job(s) handed back" in output_of(first)
    wait_until(lambda: not still_running(helpers), 30,
               "the end of the stopped worker's LibreOffice and helper processes")
    assert report(settings, job_id)["status"] == "queued"  # not left to its lease

    # A worker killed with SIGKILL: the next one takes over what it held.
    with worker_process(settings.data_dir, env) as second:
        done = report(settings, job_id)["done"]
        wait_until(lambda: report(settings, job_id)["done"] >= done + 2, 180, "two more rows",
                   lambda: output_of(second))
        os.kill(second.pid, signal.SIGKILL)
        second.wait(30)
    before = recorded_files(settings, job_id)
    assert len(before) < ROWS

    with worker_process(settings.data_dir, env) as third:
        wait_until(lambda: report(settings, job_id)["status"] in ("done", "failed"), 300,
                   "the job's end", lambda: output_of(third))
        job = assert_every_row_once(settings, job_id, before)
        assert job["attempts"] == 3
        third.send_signal(signal.SIGTERM)
        assert third.wait(90) == 0, output_of(third)
