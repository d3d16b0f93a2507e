"""The service's workers: the LibreOffice pool and the processes that sign.

Shared by the API routes and the web pages.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from fastapi import FastAPI, Request

from pipeline.config import Settings

log = logging.getLogger(__name__)


def signer_processes(settings: Settings) -> ProcessPoolExecutor:
    """Signing is CPU-bound Python (stamp font subsetting, CMS): in threads it would hold
    the GIL and starve the event loop, so signatures are made in worker processes."""
    return ProcessPoolExecutor(max_workers=settings.pool_size or os.cpu_count() or 1,
                               mp_context=multiprocessing.get_context("spawn"))


async def in_signer_process(app: FastAPI, function, *args):
    """Run ``function(*args)`` in a signer process; a pool whose worker died is replaced and
    the call made once more (the use cases are safe to repeat)."""
    loop = asyncio.get_running_loop()
    try:
        return await loop.run_in_executor(app.state.signers, function, *args)
    except BrokenProcessPool:
        log.error("a signer process died; replacing the pool")
        app.state.signers = signer_processes(app.state.settings)
        return await loop.run_in_executor(app.state.signers, function, *args)


def pool_of(request: Request):
    """Return the app's LibreOffice pool, waiting for it to finish starting if need be."""
    request.app.state.pool_started.join()
    return request.app.state.pool
