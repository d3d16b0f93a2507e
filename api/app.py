"""The FastAPI service: REST under ``/api`` (``api/routes``), the web pages (``api/pages``),
OpenAPI at ``/docs``. This module only assembles them: routers, the boundary middleware
(body limits while streaming, security headers), the lifespan that starts the workers and
the job consumer (jobs and periodic passes), and the exception handlers.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from importlib.metadata import version
from pathlib import Path

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.staticfiles import StaticFiles

from api import pages, routes
from api.docs import add_offline_docs
from api.errors import (
    ApiError,
    api_error_handler,
    body_too_large_handler,
    countersign_error_handler,
    request_validation_handler,
    unexpected_error_handler,
)
from api.gate import Gate
from api.headers import SecurityHeaders
from api.limits import BodyLimit, BodyTooLarge
from api.workers import start_signers
from pipeline.audit.sandbox import VerificationPool
from pipeline.config import Settings, configure_logging, debug_enabled, load_settings
from pipeline.errors import ConversionError, CountersignError
from pipeline.jobs.runner import JobRunner, serve_consumes
from pipeline.outbound.webhooks import require_webhook_secret
from pipeline.people.setup import secure_data_folder
from pipeline.render.generation import converter_pool
from signing.errors import SigningError

log = logging.getLogger(__name__)
STATIC = Path(__file__).resolve().parent / "static"
# Sign-in links: per client address and per e-mail address.
LINK_RATE = "10/hour"


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI):
    """Start the LibreOffice pool (in the background: the service answers at once, and the
    first document waits for the pool only if it is not warm yet), the signer processes and,
    unless workers do it elsewhere, a consumer of the job queue (jobs and periodic passes);
    stop them on the way out (jobs still running go back to the queue)."""
    settings: Settings = app.state.settings
    await run_in_threadpool(secure_data_folder, settings)
    pool = converter_pool(settings)
    app.state.pool = pool

    def start() -> None:
        try:
            pool.start()
        except (ConversionError, OSError) as exc:  # reported on first use: "pool is closed"
            if not pool.health().get("closed"):  # not merely a service stopped while starting
                log.error("LibreOffice pool did not start: %s", exc)

    starter = threading.Thread(target=start, daemon=True)
    starter.start()
    app.state.pool_started = starter
    app.state.signers = start_signers(settings)
    runner = None
    if serve_consumes(settings):
        runner = await run_in_threadpool(
            lambda: JobRunner(settings, pool, pool_ready=starter.join).start())
    app.state.job_runner = runner
    yield
    if runner is not None:
        await run_in_threadpool(runner.stop)
    app.state.signers.shutdown(cancel_futures=True)
    app.state.verifier.close()
    pool.close()


def create_app(settings: Settings | None = None) -> FastAPI:
    """Return the application for ``settings`` (default: from the environment).

    WebhookSecretMissing when webhooks are configured without a secret: the service does
    not start rather than send events anyone could forge."""
    configure_logging(debug_enabled())  # libraries' logs only when debugging
    settings = settings or load_settings()
    require_webhook_secret(settings)
    app = FastAPI(title="Countersign", version=version("countersign"), lifespan=lifespan,
                  description="会签 · document generation and per-party e-signatures",
                  docs_url=None, redoc_url=None)
    add_offline_docs(app)
    app.state.settings = settings
    # Untrusted PDFs are verified in processes of their own, started on first use.
    app.state.verifier = VerificationPool(settings)
    app.state.verify_gate = Gate(settings, "verify", settings.verify_rate,
                                 settings.verify_per_client)
    app.state.link_gate = Gate(settings, "sign-in-link", LINK_RATE, per_client=1)
    for router in (*routes.ROUTERS, pages.router):
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    # Outermost last: headers go on every answer, the 413s included.
    app.add_middleware(BodyLimit, settings=settings)
    app.add_middleware(SecurityHeaders)
    app.add_exception_handler(BodyTooLarge, body_too_large_handler)
    app.add_exception_handler(pages.SignInNeeded, pages.sign_in_first)
    app.add_exception_handler(pages.PageRefused, pages.refused_page)
    # The API answers JSON; a page answers an HTML page with the same status and message.
    app.add_exception_handler(CountersignError, pages.as_page(countersign_error_handler))
    app.add_exception_handler(SigningError, pages.as_page(countersign_error_handler))
    app.add_exception_handler(ApiError, pages.as_page(api_error_handler))
    app.add_exception_handler(RequestValidationError,
                              pages.as_page(request_validation_handler))
    app.add_exception_handler(Exception, pages.as_page(unexpected_error_handler))
    return app
