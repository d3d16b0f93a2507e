"""Stalled jobs brought back: a periodic pass that any consumer may run.

A running job is stalled when its lease has passed without a heartbeat, or when its holder
is a process of this machine that has ended (``identity.holder_gone``). It goes back to the
queue with its message sent again, and the next consumer resumes it; after
``MAX_ATTEMPTS`` takes it fails instead (a job that kills every consumer that runs it must
not go round for ever). A queued job whose message is missing from the queue (the server
that accepted it died between recording it and sending it) has it sent again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from pipeline.config import Settings
from pipeline.jobs.identity import holder_gone
from pipeline.jobs.queue import shared_queue
from pipeline.jobs.record import stamp, utc_now
from pipeline.record import database
from pipeline.record import jobs as records

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
# Slots of the periodic passes are kept this long (what /api/health and operators read).
SLOTS_KEPT = timedelta(days=2)


@dataclass
class Recovered:
    """What one recovery pass did: jobs queued again, messages sent again, jobs failed."""

    requeued: list[str] = field(default_factory=list)
    resent: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def recover_stalled(settings: Settings) -> Recovered:
    """Queue again every stalled job, send again every lost message; return what it did."""
    now = utc_now()
    done = Recovered()
    queue = shared_queue(settings)
    with database.connection(settings.database) as conn:
        for job in records.running_jobs(conn):
            if job["lease_until"] >= stamp(now) and not holder_gone(job["owner"]):
                continue
            if job["attempts"] >= MAX_ATTEMPTS:
                error = (f"任务在 {job['attempts']} 次尝试后仍未完成，已放弃 / gave up after "
                         f"{job['attempts']} attempts: its consumer stopped every time")
                if records.fail_stalled(conn, job["id"], job["owner"], stamp(now), error):
                    done.failed.append(job["id"])
                continue
            if records.requeue_job(conn, job["id"], job["owner"], stamp(now),
                                   lease_seen=job["lease_until"]):
                queue.send_job(job["id"])
                done.requeued.append(job["id"])
        quiet_since = stamp(now - timedelta(seconds=settings.job_lease_s))
        lost = records.queued_since(conn, quiet_since)
        if lost:
            waiting = queue.waiting_jobs()
            for job_id in lost:
                if job_id not in waiting:
                    records.touch_queued(conn, job_id, stamp(now))
                    queue.send_job(job_id)
                    done.resent.append(job_id)
        records.prune_slots(conn, stamp(now - SLOTS_KEPT))
    for job_id in done.requeued + done.resent:
        log.warning("job %s was stalled and is queued again", job_id)
    return done
