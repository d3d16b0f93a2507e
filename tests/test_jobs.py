"""The durable job queue on the records' own database (SQLite here, PostgreSQL in the slow
tier): JSON messages, one holder per job, recovery of what a dead or silent holder left,
periodic passes once per slot across consumers, job status from any server, the queue in
/api/health. The end-to-end runs (LibreOffice, killed servers and workers) are in
test_jobs_e2e.py."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import threading
import time
from dataclasses import replace
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from pipeline.config import Settings
from pipeline.jobs import passes
from pipeline.jobs.identity import Owner, holder_gone
from pipeline.jobs.queue import build_queue, close_shared_queues, shared_queue
from pipeline.jobs.record import (
    JobKind,
    JobSpec,
    JobStatus,
    Lease,
    report,
    stamp,
    submit,
    utc_now,
)
from pipeline.jobs.recovery import MAX_ATTEMPTS, recover_stalled
from pipeline.jobs.runner import JobRunner
from pipeline.people.access import create_token
from pipeline.record import database
from pipeline.record import jobs as records
from tests.support.cli import COUNTERSIGN
from tests.support.forms import example


@pytest.fixture
def settings(backend_settings: Settings):
    """The queue's tests run on SQLite and on PostgreSQL."""
    yield replace(backend_settings, queue_poll_s=0.2)
    close_shared_queues()


def a_job(settings: Settings, total: int = 2) -> str:
    return submit(settings, JobSpec(JobKind.BULK, {"template": "issue_tracking"},
                                    total=total, data=b""))["id"]


def test_messages_are_json_and_a_pickled_one_runs_nothing(settings, tmp_path):
    queue = build_queue(settings)
    try:
        job_id = a_job(settings)
        (raw,) = queue.huey.storage.enqueued_items()
        message = json.loads(bytes(raw))
        assert message["name"].endswith(".job") and message["args"] == [job_id]
        assert queue.waiting_jobs() == {job_id}
        queue.huey.flush()

        # What Huey's default serializer would execute while reading the message.
        marker = tmp_path / "pickle-ran"

        class Exploit:
            def __reduce__(self):
                return (os.system, (f"touch {marker}",))

        queue.huey.storage.enqueue(pickle.dumps(Exploit()))
        with pytest.raises(ValueError):
            queue.huey.dequeue()
        assert not marker.exists()
    finally:
        queue.close()


def test_a_job_is_held_by_one_consumer_until_its_lease_passes(settings):
    settings = replace(settings, job_lease_s=1.0)
    job_id = a_job(settings)
    first, second = Owner.this_process(), Owner.this_process()
    held = Lease.take(settings, job_id, first)
    assert held is not None and held.job["status"] == "running"
    assert Lease.take(settings, job_id, second) is None
    time.sleep(1.5)  # the heartbeat keeps it
    assert Lease.take(settings, job_id, second) is None
    held.end()  # a consumer that stops beating (hung, or cut off from the database)
    deadline = time.monotonic() + 10
    while (taken := Lease.take(settings, job_id, second)) is None:
        assert time.monotonic() < deadline, "the lease never passed"
        time.sleep(0.2)
    assert not held.finish(JobStatus.DONE)  # the first may not end it now
    assert taken.finish(JobStatus.DONE, result={"ok": True})
    job = report(settings, job_id)
    assert (job["status"], job["attempts"], job["result"]) == ("done", 2, {"ok": True})


def _dead_local_owner() -> str:
    """An owner id of this machine whose process has ended."""
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    alive = Owner.this_process().id.split("/")
    ended.wait()
    return "/".join([alive[0], alive[1], str(ended.pid), "12345", "abc"])


def test_recovery_takes_back_what_a_dead_or_silent_holder_left(settings):
    now = utc_now()
    past, future = stamp(now - timedelta(seconds=5)), stamp(now + timedelta(minutes=10))
    dead_here = _dead_local_owner()
    assert holder_gone(dead_here) and not holder_gone(Owner.this_process().id)
    elsewhere = "other-host/some-boot.4026531836/4242/99/abc"
    assert not holder_gone(elsewhere)  # another machine's processes are never judged
    jobs = {name: a_job(settings) for name in
            ("silent", "busy", "dead", "hopeless", "unsent")}
    shared_queue(settings).huey.flush()  # as if every message had been taken
    with database.connection(settings.database) as conn:
        for name, owner, until in (("silent", elsewhere, past), ("busy", elsewhere, future),
                                   ("dead", dead_here, future), ("hopeless", elsewhere, past)):
            assert records.claim_job(conn, jobs[name], owner, stamp(now), until)
        database.run(conn, "UPDATE jobs SET attempts = :n WHERE id = :id",
                     {"n": MAX_ATTEMPTS, "id": jobs["hopeless"]})
        database.run(conn, "UPDATE jobs SET updated_at = :old WHERE id = :id",
                     {"old": stamp(now - timedelta(hours=1)), "id": jobs["unsent"]})

    done = recover_stalled(settings)
    assert sorted(done.requeued) == sorted([jobs["silent"], jobs["dead"]])
    assert done.resent == [jobs["unsent"]] and done.failed == [jobs["hopeless"]]
    assert shared_queue(settings).waiting_jobs() == {jobs["silent"], jobs["dead"],
                                                      jobs["unsent"]}
    status = {name: report(settings, job_id)["status"] for name, job_id in jobs.items()}
    assert status == {"silent": "queued", "busy": "running", "dead": "queued",
                      "hopeless": "failed", "unsent": "queued"}
    assert "gave up" in report(settings, jobs["hopeless"])["error"]
    again = recover_stalled(settings)  # nothing twice
    assert (again.requeued, again.resent, again.failed) == ([], [], [])


def test_periodic_passes_run_once_per_slot_across_two_consumers(settings, monkeypatch):
    ran: list[tuple[str, int, str]] = []
    original = passes.run_pass

    def counted(context, name, slot):
        ran.append((name, slot, context.owner.id))
        original(context, name, slot)

    monkeypatch.setattr(passes, "run_pass", counted)
    monkeypatch.setattr(passes, "PASSES", {"tick": passes.Pass("tick", lambda s: None,
                                                                 lambda s: 1.0)})
    consumers = [JobRunner(settings, pool=None, concurrency=2) for _ in range(2)]
    for consumer in consumers:
        consumer.start()
    try:
        deadline = time.monotonic() + 30
        while len({slot for _, slot, _ in ran}) < 5:
            assert time.monotonic() < deadline, ran
            time.sleep(0.2)
    finally:
        for consumer in consumers:
            consumer.stop()
    slots = [slot for _, slot, _ in ran]
    assert len(slots) == len(set(slots)), ran  # not one slot twice
    with database.connection(settings.database) as conn:
        claimed = {row["slot"]: row for row in records.select_slots(conn, "tick")}
    assert set(slots) <= set(claimed)
    assert all(claimed[slot]["finished_at"] for slot in slots)
    # Both schedulers were ticking all along: each slot was claimed by one of them.
    owners = {consumer.owner.id for consumer in consumers}
    assert {row["claimed_by"] for row in claimed.values()} <= owners


def test_any_server_answers_for_a_job_another_accepted(settings):
    token = {"Authorization": f"Bearer {create_token(settings, 'admin')}"}
    first, second = TestClient(create_app(settings)), TestClient(create_app(settings))
    rows = "\n".join(json.dumps(example("issue_tracking"), ensure_ascii=False)
                     for _ in range(2)) + "\n"
    accepted = first.post("/api/bulk/issue_tracking", content=rows.encode(),
                          headers={**token, "Content-Type": "application/x-ndjson"})
    assert accepted.status_code == 202, accepted.text
    job = accepted.json()
    assert (job["status"], job["total"], job["template"]) == ("queued", 2, "issue_tracking")
    seen = second.get(f"/api/jobs/{job['id']}", headers=token)
    assert seen.status_code == 200 and seen.json()["id"] == job["id"]
    assert seen.json()["status"] == "queued"
    missing = second.get("/api/jobs/job-nope", headers=token)
    assert missing.status_code == 404 and missing.json()["code"] == "unknown_job"
    unknown = first.post("/api/bulk/no_such_template", content=rows.encode(),
                         headers={**token, "Content-Type": "application/x-ndjson"})
    assert unknown.status_code == 404, unknown.text

    health = second.get("/api/health").json()["queue"]
    assert health["ok"] and health["pending"] == 1 and health["oldest_pending_s"] >= 0
    assert (health["running"], health["stalled"], health["consuming"]) == (0, 0, False)


def test_worker_refuses_bad_usage_in_one_line(tmp_path):
    done = subprocess.run([COUNTERSIGN, "--data-dir", str(tmp_path), "worker",
                           "--concurrency", "0"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and "--concurrency" in done.stderr


def test_a_consumer_stopping_hands_its_job_back_at_once(settings):
    job_id = a_job(settings)
    runner = JobRunner(settings, pool=None, concurrency=1)
    lease = Lease.take(settings, job_id, runner.owner)  # as if one of its threads ran it
    assert lease is not None
    lease.end()
    shared_queue(settings).huey.flush()
    runner.start()
    released = runner.stop()
    assert released == [job_id]
    job = report(settings, job_id)
    assert job["status"] == "queued" and shared_queue(settings).waiting_jobs() == {job_id}


def test_two_threads_taking_one_job_get_it_once(settings):
    job_id = a_job(settings)
    taken: list[Lease | None] = []
    start = threading.Barrier(4)

    def take():
        start.wait()
        taken.append(Lease.take(settings, job_id, Owner.this_process()))

    threads = [threading.Thread(target=take) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    held = [lease for lease in taken if lease is not None]
    assert len(held) == 1
    held[0].end()
