"""What a consumer does with a message: run a job (bulk generation, closing a document with
B-LTA) or a periodic pass, with the context the consumer gives it.

Each job runs under a lease on its record (``record.Lease``); a job that raises a known
error fails with that error's message, one that is interrupted (the consumer stopping, or
another consumer having taken it over) is left for the next consumer.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from pipeline.config import Settings
from pipeline.errors import KNOWN_ERRORS
from pipeline.jobs import passes
from pipeline.jobs.bulk import Interrupted, run_bulk
from pipeline.jobs.identity import Owner
from pipeline.jobs.record import JobKind, JobSpec, JobStatus, Lease, submit

log = logging.getLogger(__name__)


@dataclass
class JobContext:
    """What a consumer's tasks run with: its settings and identity, its LibreOffice pool
    (``pool()`` returns it, started), and the event set when the consumer stops."""

    settings: Settings
    owner: Owner
    pool: Callable[[], object]
    stopping: threading.Event = field(default_factory=threading.Event)

    def run_job(self, job_id: str) -> None:
        run_job(self, job_id)

    def run_pass(self, name: str, slot: int) -> None:
        passes.run_pass(self, name, slot)


def run_job(context: JobContext, job_id: str) -> None:
    """Take job ``job_id`` if it is free and run it to its end (done or failed), unless the
    consumer stops or loses it first."""
    lease = Lease.take(context.settings, job_id, context.owner)
    if lease is None:  # another consumer holds it, or it is over
        return
    try:
        result = JOB_KINDS[JobKind(lease.job["kind"])](context, lease)
    except Interrupted:
        lease.end()
        return
    except KNOWN_ERRORS as exc:
        if _interrupted(context, lease):
            return
        lease.finish(JobStatus.FAILED, error=str(exc))
        return
    except Exception as exc:  # noqa: BLE001 - a bug fails the job, not the consumer
        if _interrupted(context, lease):
            return
        log.exception("job %s failed", job_id)
        lease.finish(JobStatus.FAILED,
                     error=f"内部错误 / internal error: {type(exc).__name__}: {exc}")
        return
    lease.finish(JobStatus.DONE, result=result)


def _interrupted(context: JobContext, lease: Lease) -> bool:
    """Whether the job ended because the consumer is stopping (its pool closed under it)
    or lost the lease; then the job is left for the next consumer."""
    if context.stopping.is_set() or lease.lost.is_set():
        lease.end()
        return True
    return False


def _bulk(context: JobContext, lease: Lease) -> dict:
    return run_bulk(context.settings, lease, context.pool(), context.stopping)


def _close(context: JobContext, lease: Lease) -> dict:
    from pipeline.documents.close import close_document

    params = lease.job["params"]
    status = close_document(context.settings, params["document"], context.pool(),
                            params.get("actor") or "job")
    return status.model_dump(mode="json")


JOB_KINDS: dict[JobKind, Callable[[JobContext, Lease], dict]] = {
    JobKind.BULK: _bulk,
    JobKind.CLOSE: _close,
}


def submit_close(settings: Settings, document_id: str, actor: str) -> dict:
    """Queue closing ``document_id`` (closure rules, B-LTA, archive); return the job's
    report. Closing is safe to repeat, so a job taken over finishes what is missing."""
    return submit(settings, JobSpec(JobKind.CLOSE, {"document": document_id, "actor": actor},
                                    total=1, created_by=actor))
