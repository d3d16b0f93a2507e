"""Consumers: the threads that run queued jobs and the periodic passes, in ``countersign
worker`` or inside ``countersign serve``.

A consumer is Huey's (worker threads and a scheduler thread, ``huey.consumer.Consumer``)
with this project's scheduler (``passes.PassScheduler``), an identity for the job records
and a LibreOffice pool. Stopping it — SIGTERM to a worker, or the service shutting down —
stops taking messages, closes the pool (LibreOffice goes with it), waits for the worker
threads, and puts the jobs it still held back in the queue for another consumer at once.
A consumer killed outright leaves its jobs to the recovery pass.
"""

from __future__ import annotations

import logging
import signal
import threading

from huey.consumer import Consumer

from pipeline.config import Settings
from pipeline.jobs.identity import Owner
from pipeline.jobs.passes import PassScheduler
from pipeline.jobs.queue import JobQueue, build_queue, shared_queue
from pipeline.jobs.record import stamp, utc_now
from pipeline.jobs.recovery import recover_stalled
from pipeline.jobs.tasks import JobContext
from pipeline.record import database
from pipeline.record import jobs as records

log = logging.getLogger(__name__)
# How long stopping waits for the worker threads once the pool is closed under them.
STOP_WAIT_S = 30.0


class _Consumer(Consumer):
    """Huey's consumer with the passes' scheduler, and no signal handlers of its own: the
    process that runs it (uvicorn, or ``run_worker``) owns its signals."""

    def __init__(self, queue: JobQueue, context: JobContext, **options) -> None:
        self._context, self._queue = context, queue
        super().__init__(queue.huey, **options)

    def _create_scheduler(self):
        return PassScheduler(huey=self.huey, stop_flag=self.stop_flag,
                             interval=self.scheduler_interval, periodic=False,
                             context=self._context, queue=self._queue)

    def _set_signal_handlers(self) -> None:
        pass


class JobRunner:
    """One consumer: ``start()`` it, ``stop()`` it; ``pool`` is the LibreOffice pool its
    jobs convert with (closed by ``stop``), ``pool_ready`` what waits for it to start."""

    def __init__(self, settings: Settings, pool, concurrency: int | None = None,
                 pool_ready=None) -> None:
        self.settings = settings
        self.owner = Owner.this_process()
        self._pool, self._pool_ready = pool, pool_ready
        self.context = JobContext(settings, self.owner, self._started_pool)
        self.queue = build_queue(settings, self.context)
        self.consumer = _Consumer(self.queue, self.context,
                                  workers=max(1, concurrency or settings.worker_concurrency),
                                  periodic=False, initial_delay=0.1, backoff=1.5,
                                  max_delay=max(0.1, settings.queue_poll_s),
                                  scheduler_interval=1, check_worker_health=True)
        self._supervisor = threading.Thread(target=self._supervise, daemon=True,
                                            name="job-consumer")
        self._stopped = threading.Event()

    def _started_pool(self):
        if self._pool_ready is not None:
            self._pool_ready()
        return self._pool

    def start(self) -> JobRunner:
        """Start the worker threads and the scheduler; return self."""
        self.consumer.start()
        self._supervisor.start()
        return self

    def _supervise(self) -> None:
        """Take back at once the jobs of holders on this machine that have ended (a server
        killed and started again: the recovery pass's slot may have been taken already
        this period); then replace a worker or scheduler thread that dies (Huey's health
        check)."""
        try:
            recover_stalled(self.settings)
        except Exception:  # noqa: BLE001 - the recovery pass runs again soon
            log.exception("recovering stalled jobs at start failed")
        while not self._stopped.wait(10):
            try:
                self.consumer.check_worker_health()
            except Exception:  # noqa: BLE001 - checked again in ten seconds
                log.exception("checking the job consumer's threads failed")

    def stop(self) -> list[str]:
        """Stop taking work, close the pool, wait for the threads, and queue again the jobs
        this consumer still held; return their ids."""
        self.context.stopping.set()
        self._stopped.set()
        self.consumer.stop_flag.set()
        if self._pool is not None:
            self._pool.close()  # a conversion under way ends now; its row is not recorded
        threads = [thread for _, thread in self.consumer.worker_threads]
        for thread in [*threads, self.consumer.scheduler]:
            thread.join(STOP_WAIT_S)
        released = release_jobs(self.settings, self.owner)
        self.queue.close()
        return released


def release_jobs(settings: Settings, owner: Owner) -> list[str]:
    """Put the jobs ``owner`` holds back in the queue and send their messages again;
    return their ids."""
    now = stamp(utc_now())
    released = []
    try:
        with database.connection(settings.database) as conn:
            for job_id in records.owned_jobs(conn, owner.id):
                if records.requeue_job(conn, job_id, owner.id, now):
                    shared_queue(settings).send_job(job_id)
                    released.append(job_id)
    except database.DatabaseError:  # the recovery pass takes them once their lease passes
        log.warning("could not hand back the running jobs", exc_info=True)
    return released


def serve_consumes(settings: Settings) -> bool:
    """Whether ``serve`` runs a consumer itself: as configured, else only with the
    embedded database (with PostgreSQL, ``countersign worker`` processes run the jobs)."""
    if settings.serve_worker is not None:
        return settings.serve_worker
    return not settings.database_url


def run_worker(settings: Settings, concurrency: int | None = None) -> list[str]:
    """Run a consumer with its own LibreOffice pool until SIGTERM or SIGINT; return the
    ids of the jobs it handed back when it stopped."""
    from pipeline.render.generation import converter_pool

    pool = converter_pool(settings).start_in_background()
    runner = JobRunner(settings, pool, concurrency)
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set())
                for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        runner.start()
        log.info("worker %s runs %s job(s) at a time", runner.owner.id,
                 runner.consumer.workers)
        while not stop.wait(1):
            pass
    finally:
        released = runner.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return released
