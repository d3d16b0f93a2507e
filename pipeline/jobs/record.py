"""Job records: what a job is and where it stands, kept in the database so that any server
answers for a job another accepted, and any consumer can take over a job another left.

``submit`` records a job and sends its message; ``report`` is what ``GET /api/jobs/{id}``
answers; ``Lease`` is a consumer's hold on a running job, extended by a heartbeat thread
while the job runs.
"""

from __future__ import annotations

import logging
import secrets
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from pipeline.config import Settings
from pipeline.jobs.identity import Owner
from pipeline.record import database
from pipeline.record import jobs as records

log = logging.getLogger(__name__)


class JobKind(StrEnum):
    BULK = "bulk"
    CLOSE = "close"


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


def utc_now() -> datetime:
    return datetime.now(UTC)


def stamp(moment: datetime) -> str:
    """Return ``moment`` as the records write times: ISO 8601 in UTC, microseconds always
    shown, so that two stamps compare as text the way they compare as times."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def new_job_id() -> str:
    return f"job-{secrets.token_hex(8)}"


@dataclass(frozen=True)
class JobSpec:
    """A job to submit: its kind, its parameters (JSON), how many rows it has, its input."""

    kind: JobKind
    params: dict
    total: int = 0
    data: bytes | None = None
    created_by: str | None = None


def submit(settings: Settings, spec: JobSpec) -> dict:
    """Record ``spec`` as a queued job and send its message; return its report.

    The record comes first: if the message is then lost (the queue down, this process
    killed), the recovery pass sends it again, while a message without a record would
    name nothing."""
    from pipeline.jobs.queue import send_job

    job_id = new_job_id()
    with database.connection(settings.database) as conn:
        records.insert_job(conn, {"id": job_id, "kind": str(spec.kind), "params": spec.params,
                                  "total": spec.total, "created_at": stamp(utc_now()),
                                  "created_by": spec.created_by}, spec.data)
    try:
        send_job(settings, job_id)
    except Exception:  # noqa: BLE001 - recorded: the recovery pass sends it again
        log.exception("job %s is recorded but its message was not sent", job_id)
    found = report(settings, job_id)
    assert found is not None
    return found


def report(settings: Settings, job_id: str) -> dict | None:
    """Return what is known of job ``job_id`` — {id, kind, status, total, done, succeeded,
    failed, error, attempts, created_at, created_by, updated_at, result, results (one per
    finished row: line, number, error, and a bulk row's file and its SHA-256 in the store),
    and for a bulk job its template} — or None when there is no such job."""
    with database.connection(settings.database) as conn:
        job = records.select_job(conn, job_id)
        rows = records.select_rows(conn, job_id) if job else []
    if job is None:
        return None
    failed = sum(1 for row in rows if row["error"] is not None)
    return {"id": job["id"], "kind": job["kind"], "template": job["params"].get("template"),
            "document": job["params"].get("document"), "status": job["status"],
            "total": job["total"], "done": job["done"], "succeeded": len(rows) - failed,
            "failed": failed, "error": job["error"], "attempts": job["attempts"],
            "created_at": job["created_at"], "created_by": job["created_by"],
            "updated_at": job["updated_at"], "result": job["result"],
            "results": [{"line": row["line"], "number": row["number"], "error": row["error"],
                         "file": row["file"], "sha256": row["sha256"]} for row in rows]}


class LeaseLost(Exception):
    """Another consumer took the job over (this one's heartbeat stopped for too long)."""


class Lease:
    """A consumer's hold on a running job: taken with :meth:`take`, extended every third of
    its length by a heartbeat thread until :meth:`end`. ``lost`` is set when the record
    says someone else holds the job now."""

    def __init__(self, settings: Settings, job: dict, owner: Owner) -> None:
        self.settings, self.job, self.owner = settings, job, owner
        self.lost = threading.Event()
        self._ended = threading.Event()
        self._beat = threading.Thread(target=self._heartbeat, daemon=True,
                                      name=f"lease-{job['id']}")

    @classmethod
    def take(cls, settings: Settings, job_id: str, owner: Owner) -> Lease | None:
        """Take job ``job_id`` if it is free (queued, or its lease has passed); return the
        lease with its heartbeat running, or None."""
        now = utc_now()
        with database.connection(settings.database) as conn:
            job = records.claim_job(conn, job_id, owner.id, stamp(now),
                                    stamp(now + timedelta(seconds=settings.job_lease_s)))
        if job is None:
            return None
        lease = cls(settings, job, owner)
        lease._beat.start()
        return lease

    def _heartbeat(self) -> None:
        interval = max(0.2, self.settings.job_lease_s / 3)
        while not self._ended.wait(interval):
            now = utc_now()
            try:
                with database.connection(self.settings.database) as conn:
                    held = records.extend_lease(
                        conn, self.job["id"], self.owner.id,
                        stamp(now + timedelta(seconds=self.settings.job_lease_s)), stamp(now))
            except database.DatabaseError:  # the next beat tries again
                log.warning("heartbeat of job %s failed", self.job["id"], exc_info=True)
                continue
            if not held:
                log.warning("job %s was taken over by another consumer", self.job["id"])
                self.lost.set()
                return

    def finish(self, status: JobStatus, *, result: dict | None = None,
               error: str | None = None) -> bool:
        """End the job as ``status``; return False if it was no longer this lease's."""
        self.end()
        with database.connection(self.settings.database) as conn:
            return records.finish_job(conn, self.job["id"], self.owner.id, str(status),
                                      stamp(utc_now()), result=result, error=error)

    def end(self) -> None:
        """Stop the heartbeat (the record is left as it is)."""
        self._ended.set()
        if self._beat.is_alive() and self._beat is not threading.current_thread():
            self._beat.join()
