"""The service's workers: the LibreOffice pool and the processes that sign.

Shared by the API routes and the web pages.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from fastapi import FastAPI, Request

from pipeline.config import Settings
from pipeline.documents.sign import after_signing, prepare_signing, sign_document
from pipeline.render.lifetime import end_with_parent

log = logging.getLogger(__name__)


def _ready() -> bool:
    return True


def signer_processes(settings: Settings) -> ProcessPoolExecutor:
    """Signing is CPU-bound Python (CMS, the stamp): in threads it would hold the GIL and
    starve the event loop, so signatures are made in worker processes. Each one prepares
    trust, the TSA key and the stamp fonts when it starts, and all are started at once
    (:func:`start_signers`), so that no request pays for a process's start-up."""
    return ProcessPoolExecutor(max_workers=_signer_count(settings),
                               mp_context=multiprocessing.get_context("spawn"),
                               initializer=_start_signer, initargs=(settings, os.getpid()))


def _start_signer(settings: Settings, service: int) -> None:
    """A signer process: ended with the service however the service ends, and prepared."""
    end_with_parent(service)
    prepare_signing(settings)


def start_signers(settings: Settings) -> ProcessPoolExecutor:
    """Return a signer pool whose processes are all started (they spawn on demand: one
    trivial task per process, submitted together, spawns them all)."""
    pool = signer_processes(settings)
    for _ in range(_signer_count(settings)):
        pool.submit(_ready)
    return pool


def _signer_count(settings: Settings) -> int:
    # Two per core: a signature also waits (fsync of the revision and of the ledger, the
    # database lock), and meanwhile another process can use the core.
    return 2 * (settings.pool_size or os.cpu_count() or 1)


async def in_signer_process(app: FastAPI, function, *args, **kwargs):
    """Run ``function(*args, **kwargs)`` in a signer process; a pool whose worker died is
    replaced and the call made once more (the use cases are safe to repeat)."""
    loop = asyncio.get_running_loop()
    call = functools.partial(function, *args, **kwargs)
    try:
        return await loop.run_in_executor(app.state.signers, call)
    except BrokenProcessPool:
        log.error("a signer process died; replacing the pool")
        app.state.signers = start_signers(app.state.settings)
        return await loop.run_in_executor(app.state.signers, call)


async def sign_in_worker(app: FastAPI, settings: Settings, document_id: str, party_id: str,
                         passphrase: str, expected_revision: str | None,
                         client: str | None) -> dict:
    """Sign in a signer process and answer once the signature is stored and in the ledger;
    what follows (the mail to the next parties, the ledger anchor when due) runs in the
    background: a relay that is slow or down never delays the answer, and the periodic
    passes redo what a crash left undone."""
    status = await in_signer_process(app, sign_document, settings, document_id, party_id,
                                     passphrase, expected_revision, client, follow_up=False)
    task = asyncio.get_running_loop().run_in_executor(None, _follow_up_quietly, settings,
                                                      document_id)
    app.state.following_up = getattr(app.state, "following_up", set())
    app.state.following_up.add(task)
    task.add_done_callback(app.state.following_up.discard)
    return status


def _follow_up_quietly(settings: Settings, document_id: str) -> None:
    try:
        after_signing(settings, document_id)
    except Exception:  # noqa: BLE001 - the periodic passes try again
        log.exception("following up the signature on %s failed", document_id)


def pool_of(request: Request):
    """Return the app's LibreOffice pool, waiting for it to finish starting if need be."""
    request.app.state.pool_started.join()
    return request.app.state.pool
