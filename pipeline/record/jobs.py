"""SQL of the job records and the periodic passes' slots.

A job record is the truth about a job: what it is (kind, parameters, input), where it stands
(queued, running, done, failed; rows done of total), its result or error, and who holds it.
A consumer holds a job by a lease that its heartbeat extends: a compare-and-set on the
record, so that two consumers never run the same job at once and a consumer that died
leaves the job to be taken over once its lease has passed. Each finished row of a job is
recorded beside it (``job_rows``), so that a job taken over skips what is done; a bulk
row names its file and the file's SHA-256 in the store, so that any server can hand it out.

A periodic pass runs once per slot (its interval's number since the epoch) across every
server and worker: the consumer that inserts ``(task, slot)`` runs it; the others find the
row there. Times are ISO 8601 in UTC, all of one width, so they compare as text.
"""

from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import Connection

from pipeline.record.engine import run, transaction

JOB_COLUMNS = ("id", "kind", "params", "status", "done", "total", "result", "error", "owner",
               "lease_until", "attempts", "created_at", "updated_at", "created_by")
ROW_COLUMNS = ("line", "number", "file", "sha256", "error", "done_at")


def _job(values) -> dict:
    job = dict(zip(JOB_COLUMNS, values, strict=True))
    job["params"] = json.loads(job["params"])
    job["result"] = json.loads(job["result"]) if job["result"] else None
    return job


def insert_job(conn: Connection, job: dict, data: bytes | None) -> None:
    """Insert a queued job ({id, kind, params (a dict), total, created_at, created_by})
    with its input ``data``."""
    run(conn,
        "INSERT INTO jobs (id, kind, params, input, status, done, total, attempts, created_at, "
        "updated_at, created_by) VALUES (:id, :kind, :params, :input, 'queued', 0, :total, 0, "
        ":created_at, :created_at, :created_by)",
        {**job, "params": json.dumps(job["params"], ensure_ascii=False, sort_keys=True),
         "input": data})


def select_job(conn: Connection, job_id: str) -> dict | None:
    """Return the job record ``job_id`` (without its input), or None."""
    row = run(conn, f"SELECT {', '.join(JOB_COLUMNS)} FROM jobs WHERE id = :id",
              {"id": job_id}).fetchone()
    return _job(row) if row else None


def job_input(conn: Connection, job_id: str) -> bytes | None:
    """Return the input bytes of job ``job_id`` (a bulk job's rows), or None."""
    row = run(conn, "SELECT input FROM jobs WHERE id = :id", {"id": job_id}).fetchone()
    return bytes(row[0]) if row and row[0] is not None else None


def claim_job(conn: Connection, job_id: str, owner: str, now: str, lease_until: str
              ) -> dict | None:
    """Take job ``job_id`` for ``owner`` until ``lease_until`` if it is queued, or running
    under a lease that has passed; return the record as taken, or None (someone else holds
    it, or it is over)."""
    with transaction(conn):
        taken = run(conn,
                    "UPDATE jobs SET status = 'running', owner = :owner, lease_until = :until, "
                    "attempts = attempts + 1, updated_at = :now WHERE id = :id AND (status = "
                    "'queued' OR (status = 'running' AND lease_until < :now))",
                    {"id": job_id, "owner": owner, "until": lease_until, "now": now}).rowcount
        return select_job(conn, job_id) if taken == 1 else None


def extend_lease(conn: Connection, job_id: str, owner: str, lease_until: str, now: str
                 ) -> bool:
    """Extend ``owner``'s lease on a running job; return False when it no longer holds it."""
    return run(conn,
               "UPDATE jobs SET lease_until = :until, updated_at = :now WHERE id = :id AND "
               "owner = :owner AND status = 'running'",
               {"id": job_id, "owner": owner, "until": lease_until, "now": now}).rowcount == 1


def record_row(conn: Connection, job_id: str, row: dict, now: str) -> None:
    """Record one finished row ({line, number, file, sha256, error}) of a job and count it;
    a row recorded already is kept as it was."""
    with transaction(conn):
        run(conn,
            "INSERT INTO job_rows (job_id, line, number, file, sha256, error, done_at) VALUES "
            "(:job_id, :line, :number, :file, :sha256, :error, :now) ON CONFLICT (job_id, "
            "line) DO NOTHING",
            {"number": None, "file": None, "sha256": None, "error": None, **row,
             "job_id": job_id, "now": now})
        run(conn,
            "UPDATE jobs SET done = (SELECT COUNT(*) FROM job_rows WHERE job_id = :id), "
            "updated_at = :now WHERE id = :id", {"id": job_id, "now": now})


def select_rows(conn: Connection, job_id: str) -> list[dict]:
    """Return the finished rows of a job, by line."""
    rows = run(conn, f"SELECT {', '.join(ROW_COLUMNS)} FROM job_rows WHERE job_id = :id "
               "ORDER BY line", {"id": job_id})
    return [dict(zip(ROW_COLUMNS, row, strict=True)) for row in rows]


def select_file(conn: Connection, job_id: str, file: str) -> dict | None:
    """Return the finished row of a job whose file is named ``file``, or None."""
    row = run(conn, f"SELECT {', '.join(ROW_COLUMNS)} FROM job_rows WHERE job_id = :id AND "
              "file = :file ORDER BY line LIMIT 1", {"id": job_id, "file": file}).fetchone()
    return dict(zip(ROW_COLUMNS, row, strict=True)) if row else None


def finish_job(conn: Connection, job_id: str, owner: str, status: str, now: str, *,
               result: dict | None = None, error: str | None = None) -> bool:
    """End ``owner``'s running job as ``status`` (done or failed) with its result or error;
    return False when the owner no longer held it (the record is left as it is)."""
    return run(conn,
               "UPDATE jobs SET status = :status, result = :result, error = :error, "
               "done = CASE WHEN :status = 'done' THEN total ELSE done END, owner = NULL, "
               "lease_until = NULL, updated_at = :now WHERE id = :id AND "
               "owner = :owner AND status = 'running'",
               {"id": job_id, "owner": owner, "status": status, "now": now,
                "result": json.dumps(result, ensure_ascii=False) if result is not None
                else None, "error": error}).rowcount == 1


def requeue_job(conn: Connection, job_id: str, owner: str | None, now: str,
                lease_seen: str | None = None) -> bool:
    """Put a running job held by ``owner`` back in the queue; return False when the record
    moved on meanwhile. With ``lease_seen`` (the lease the caller judged stalled), a
    heartbeat that extended the lease since then keeps the job with its holder."""
    sql = ("UPDATE jobs SET status = 'queued', owner = NULL, lease_until = NULL, "
           "updated_at = :now WHERE id = :id AND status = 'running' AND owner = :owner")
    if lease_seen is not None:
        sql += " AND lease_until = :lease_seen"
    return run(conn, sql, {"id": job_id, "owner": owner, "now": now,
                           "lease_seen": lease_seen}).rowcount == 1


def touch_queued(conn: Connection, job_id: str, now: str) -> None:
    """Mark a queued job as looked after at ``now`` (its message was sent again)."""
    run(conn, "UPDATE jobs SET updated_at = :now WHERE id = :id AND status = 'queued'",
        {"id": job_id, "now": now})


def fail_stalled(conn: Connection, job_id: str, owner: str | None, now: str, error: str
                 ) -> bool:
    """Give up on a stalled job held by ``owner`` (it failed too many times)."""
    return run(conn,
               "UPDATE jobs SET status = 'failed', error = :error, owner = NULL, "
               "lease_until = NULL, updated_at = :now WHERE id = :id AND status = 'running' "
               "AND owner = :owner",
               {"id": job_id, "owner": owner, "now": now, "error": error}).rowcount == 1


def owned_jobs(conn: Connection, owner: str) -> list[str]:
    """Return the ids of the running jobs ``owner`` holds."""
    return [row[0] for row in run(conn, "SELECT id FROM jobs WHERE status = 'running' AND "
                                  "owner = :owner ORDER BY id", {"owner": owner})]


def running_jobs(conn: Connection) -> list[dict]:
    """Return {id, owner, lease_until, attempts} of every running job."""
    rows = run(conn, "SELECT id, owner, lease_until, attempts FROM jobs WHERE status = "
               "'running' ORDER BY id")
    return [dict(zip(("id", "owner", "lease_until", "attempts"), row, strict=True))
            for row in rows]


def queued_since(conn: Connection, before: str) -> list[str]:
    """Return the ids of queued jobs not looked after since ``before``, oldest first."""
    return [row[0] for row in run(conn, "SELECT id FROM jobs WHERE status = 'queued' AND "
                                  "updated_at < :before ORDER BY created_at, id",
                                  {"before": before})]


def queue_counts(conn: Connection, now: str) -> dict:
    """Return {pending, oldest_pending_at, running, stalled, last_pass_at} over the job
    records (``last_pass_at``: when some consumer last claimed a periodic pass)."""
    pending, oldest = run(conn, "SELECT COUNT(*), MIN(created_at) FROM jobs WHERE status = "
                          "'queued'").fetchone()
    running, stalled = run(conn,
                           "SELECT COUNT(*), COALESCE(SUM(CASE WHEN lease_until < :now THEN 1 "
                           "ELSE 0 END), 0) FROM jobs WHERE status = 'running'",
                           {"now": now}).fetchone()
    (last_pass,) = run(conn, "SELECT MAX(claimed_at) FROM job_slots").fetchone()
    return {"pending": pending, "oldest_pending_at": oldest, "running": running,
            "stalled": int(stalled), "last_pass_at": last_pass}


# --- periodic passes ----------------------------------------------------------------------


def claim_slot(conn: Connection, task: str, slot: int, owner: str, now: str) -> bool:
    """Claim slot ``slot`` of the periodic pass ``task``; return True for the one claimant
    that inserted it, False for every other."""
    return run(conn,
               "INSERT INTO job_slots (task, slot, claimed_by, claimed_at) VALUES (:task, "
               ":slot, :owner, :now) ON CONFLICT (task, slot) DO NOTHING",
               {"task": task, "slot": slot, "owner": owner, "now": now}).rowcount == 1


def finish_slot(conn: Connection, task: str, slot: int, now: str, problem: str | None) -> None:
    """Record that a claimed slot's pass ended at ``now`` (with ``problem`` if it failed)."""
    run(conn, "UPDATE job_slots SET finished_at = :now, problem = :problem WHERE task = :task "
        "AND slot = :slot", {"task": task, "slot": slot, "now": now,
                             "problem": problem[:300] if problem else None})


def select_slots(conn: Connection, task: str | None = None) -> list[dict]:
    """Return the claimed slots (of one pass, or all), oldest first."""
    columns = ("task", "slot", "claimed_by", "claimed_at", "finished_at", "problem")
    sql = f"SELECT {', '.join(columns)} FROM job_slots"
    params: dict = {}
    if task is not None:
        sql += " WHERE task = :task"
        params["task"] = task
    return [dict(zip(columns, row, strict=True))
            for row in run(conn, sql + " ORDER BY task, slot", params)]


def prune_slots(conn: Connection, before: str) -> int:
    """Forget slots claimed before ``before``; return how many."""
    return run(conn, "DELETE FROM job_slots WHERE claimed_at < :before",
               {"before": before}).rowcount


def queue_health(conn: Connection, now: str) -> dict:
    """Return the queue's part of /api/health: {ok, pending, oldest_pending_s, running,
    stalled, last_pass_at} (``stalled``: running jobs whose lease has passed, which the
    recovery pass will queue again; ``last_pass_at``: whether any consumer is at work)."""
    counts = queue_counts(conn, now)
    oldest = counts.pop("oldest_pending_at")
    age = None
    if oldest:
        age = round((datetime.fromisoformat(now) - datetime.fromisoformat(oldest))
                    .total_seconds(), 3)
    return {"ok": True, **counts, "oldest_pending_s": age}
