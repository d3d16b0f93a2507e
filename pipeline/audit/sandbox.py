"""Verification of untrusted PDFs (anyone's upload to ``verify``), fenced off from the server.

A PDF is cheap to make and can be dear to verify: a signed file followed by a thousand empty
incremental updates costs seconds of CPU per revision pair. So an untrusted file is
verified only

- within a **revision and object budget**: revisions are counted in the bytes before anything
  is parsed, objects in the cross-reference tables before anything is validated, and a file
  over budget is a verdict ("too many revisions"), never work;
- in **worker processes** of their own (not the server's threads, not the signers), started
  at a lower CPU priority, each file with a **time and CPU budget**: past it the worker is
  killed and replaced, and the file's verdict says so;
- behind a **queue limit**: when every worker is busy and the queue is full, the caller is
  told to come back (``VerifierBusy``) instead of waiting in line for minutes.

A hostile file therefore costs at most its budget on a worker, and the server keeps
answering everyone else.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import multiprocessing
import os
import resource
import threading
from dataclasses import dataclass
from typing import Any

from pebble import ProcessExpired, ProcessPool

from pipeline.audit.verify import verify_bytes
from pipeline.config import Settings, configure_logging, debug_enabled
from pipeline.errors import OperationFailed

log = logging.getLogger(__name__)
WORKER_MEMORY_BYTES = 2 * 1024**3
TASKS_PER_WORKER = 200  # a fresh process now and then: no slow leak survives


class VerifierBusy(OperationFailed):
    """Every verification worker is busy and the queue is full (HTTP 503)."""

    code = "verifier_busy"


@dataclass(frozen=True)
class Budget:
    """What one untrusted file may cost."""

    seconds: float
    max_revisions: int
    max_objects: int

    @classmethod
    def of(cls, settings: Settings) -> Budget:
        return cls(settings.verify_timeout_s, settings.verify_max_revisions,
                   settings.verify_max_objects)


def refused_verdict(zh: str, en: str) -> dict[str, Any]:
    """Return the verdict on a file that was not (fully) verified, saying why."""
    return {"valid": False, "indication": "INDETERMINATE", "signatures": [],
            "document_timestamps": [], "problems": [f"{zh} / {en}"], "long_term": False}


def revision_problem(data: bytes, budget: Budget) -> dict[str, Any] | None:
    """Return a refusal if ``data`` holds more revisions than the budget (counted without
    parsing: every revision ends with a ``startxref``), else None."""
    revisions = data.count(b"startxref")
    if revisions > budget.max_revisions:
        return refused_verdict(
            f"修订版本过多（{revisions} 个，上限 {budget.max_revisions}），未验证",
            f"too many revisions ({revisions}, the limit is {budget.max_revisions}); "
            "the file was not verified")
    return None


def _object_problem(data: bytes, budget: Budget) -> dict[str, Any] | None:
    """Return a refusal if the cross-reference tables name more objects than the budget."""
    import io

    from pyhanko.pdf_utils.reader import PdfFileReader

    try:
        xrefs = PdfFileReader(io.BytesIO(data), strict=False).xrefs
        objects = sum(len(xrefs.explicit_refs_in_revision(revision))
                      for revision in range(xrefs.total_revisions))
        revisions = xrefs.total_revisions
    except Exception:  # noqa: BLE001 - unparsable: verify_bytes reports it as such
        return None
    if revisions > budget.max_revisions or objects > budget.max_objects:
        return refused_verdict(
            f"文件过于复杂（{revisions} 个修订版本，{objects} 个对象），未验证",
            f"the file is too complex ({revisions} revisions, {objects} objects; limits "
            f"{budget.max_revisions} and {budget.max_objects}); it was not verified")
    return None


def _worker_started(memory_bytes: int) -> None:
    """Run in each new worker: lower priority than the server, bounded memory, and the
    libraries' logs as quiet as in the server (a spawned process starts unconfigured)."""
    configure_logging(debug_enabled())
    os.nice(10)
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))


def _limit_cpu(seconds: float) -> None:
    """Let this process use ``seconds`` more CPU time; past it the kernel ends it (SIGXCPU).
    The limit counts from what the process has used so far, so it is per file."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    soft = int(usage.ru_utime + usage.ru_stime + seconds) + 1
    hard = resource.getrlimit(resource.RLIMIT_CPU)[1]
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def verify_in_worker(settings: Settings, data: bytes, budget: Budget) -> dict[str, Any]:
    """Return the verdict on ``data`` within ``budget`` (runs in a worker process)."""
    _limit_cpu(budget.seconds)
    try:
        return _object_problem(data, budget) or verify_bytes(settings, data)
    except MemoryError:
        return refused_verdict("验证超出内存预算", "verification exceeded its memory budget")


def _over_time(budget: Budget) -> dict[str, Any]:
    return refused_verdict(f"验证超出时间预算（{budget.seconds:g} 秒），已中止",
                           f"verification exceeded its time budget ({budget.seconds:g} s) "
                           "and was stopped")


class VerificationPool:
    """Worker processes that verify untrusted PDFs within a budget (see the module text)."""

    def __init__(self, settings: Settings, workers: int | None = None,
                 queue_limit: int | None = None) -> None:
        self.settings = settings
        self.budget = Budget.of(settings)
        self.workers = workers or settings.verify_workers or max(1, (os.cpu_count() or 2) // 2)
        self.queue_limit = queue_limit or self.workers * 8
        self._pool: ProcessPool | None = None
        self._lock = threading.Lock()
        self._pending = 0

    def _processes(self) -> ProcessPool:
        if self._pool is None:
            # spawn, not fork: the server has threads, and a forked child would inherit
            # whatever lock one of them held.
            self._pool = ProcessPool(max_workers=self.workers, max_tasks=TASKS_PER_WORKER,
                                     initializer=_worker_started,
                                     initargs=(WORKER_MEMORY_BYTES,),
                                     context=multiprocessing.get_context("spawn"))
        return self._pool

    def submit(self, data: bytes) -> concurrent.futures.Future:
        """Return a future of the raw verdict on ``data``; VerifierBusy when the queue is
        full. Files over the revision budget are answered at once, without a worker."""
        refused = revision_problem(data, self.budget)
        if refused is not None:
            done: concurrent.futures.Future = concurrent.futures.Future()
            done.set_result(refused)
            return done
        with self._lock:
            if self._pending >= self.queue_limit:
                raise VerifierBusy("验证服务繁忙，请稍后再试",
                                   "every verification worker is busy; try again shortly")
            self._pending += 1
            future = self._processes().schedule(verify_in_worker,
                                                (self.settings, data, self.budget),
                                                timeout=self.budget.seconds)
        future.add_done_callback(self._finished)
        return future

    def _finished(self, _: concurrent.futures.Future) -> None:
        with self._lock:
            self._pending -= 1

    def _verdict(self, future: concurrent.futures.Future) -> dict[str, Any]:
        try:
            return future.result()
        except concurrent.futures.TimeoutError:
            return _over_time(self.budget)
        except ProcessExpired:  # SIGXCPU past the CPU budget, or the memory limit
            return refused_verdict("验证超出 CPU 或内存预算，已中止",
                                   "verification exceeded its CPU or memory budget and "
                                   "was stopped")
        except Exception as exc:  # noqa: BLE001 - a hostile file is a verdict, never a 500
            log.exception("verification worker failed")
            return refused_verdict("验证失败", f"verification failed: {type(exc).__name__}")

    async def verify(self, data: bytes) -> dict[str, Any]:
        """Return the verdict on ``data`` without blocking the event loop. A cancelled
        caller (a client that went away) cancels its file, freeing the worker."""
        future = self.submit(data)
        try:
            await asyncio.wrap_future(future)
        except Exception:  # noqa: BLE001 - _verdict turns it into a verdict
            pass
        return self._verdict(future)

    def verify_now(self, data: bytes) -> dict[str, Any]:
        """Return the verdict on ``data``, waiting for it (for threads and the CLI)."""
        future = self.submit(data)
        concurrent.futures.wait([future])
        return self._verdict(future)

    @property
    def pending(self) -> int:
        """How many files are being verified or waiting."""
        return self._pending

    def close(self) -> None:
        """Stop the workers (files in progress are abandoned)."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.stop()
            pool.join(timeout=10)
