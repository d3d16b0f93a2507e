"""The FastAPI service: REST under ``/api``, OpenAPI at ``/docs``.

Routes translate HTTP into one use-case call each; who may call what is decided by the
dependencies in ``api/deps.py``. Signing, conversion and verification are blocking work:
the routes doing it are plain functions, which FastAPI runs in its thread pool, so the event
loop keeps serving other requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from importlib.metadata import version

from fastapi import Depends, FastAPI, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse

from api.deps import caller, role, settings_of, visible_document
from api.errors import (
    ApiError,
    api_error_handler,
    countersign_error_handler,
    request_validation_handler,
    unexpected_error_handler,
)
from api.models import (
    CreateDocument,
    DocumentStatus,
    Health,
    LedgerVerdict,
    PartyIn,
    PartyOut,
    ReasonRequest,
    SignRequest,
    TemplateSummary,
    Verdict,
)
from api.streaming import body_to_file
from api.web import SignInNeeded
from api.web import router as web_router
from api.workers import in_signer_process, pool_of, signer_processes
from pipeline.audit.verify import verify_bytes, verify_document
from pipeline.config import Settings, configure_logging, debug_requested, load_settings
from pipeline.documents.close import close_document
from pipeline.documents.create import create_document
from pipeline.documents.followup import follow_up
from pipeline.documents.repository import (
    blocking_documents,
    document_status,
    download_revision,
    verify_ledger,
)
from pipeline.documents.sign import sign_document
from pipeline.documents.state import DocumentState
from pipeline.documents.steps import decline_document, void_document
from pipeline.documents.uploads import MAX_UPLOAD_BYTES, read_upload, upload_countersigned
from pipeline.errors import ConversionError, CountersignError
from pipeline.forms.manifest import get_template, list_templates
from pipeline.outbound.webhooks import deliver_webhooks
from pipeline.people.access import Principal
from pipeline.people.parties import add_party, list_parties
from pipeline.render.bulk_jobs import JobBoard
from pipeline.render.generation import converter_pool
from signing.errors import SigningError

log = logging.getLogger(__name__)
ADMIN = Depends(role("admin"))
READERS = Depends(role("admin", "auditor"))
PARTY = Depends(role("party"))
CREATORS = Depends(role("admin", "party"))


async def periodic_passes(settings: Settings) -> None:
    """Run follow-up (reminders, escalation, deemed consent) and webhook delivery every
    ``background_interval_s``, in a worker thread; a failing pass is logged, never fatal."""
    if settings.background_interval_s <= 0:
        return
    while True:
        for task in (follow_up, deliver_webhooks):
            try:
                await run_in_threadpool(task, settings)
            except Exception:  # noqa: BLE001 - the next pass tries again
                log.exception("background %s failed", task.__name__)
        await asyncio.sleep(settings.background_interval_s)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Return the application for ``settings`` (default: from the environment)."""
    settings = settings or load_settings()
    configure_logging(debug_requested())

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        # The LibreOffice pool starts in the background: the service answers at once, and
        # the first document waits for the pool only if it is not warm yet.
        pool = converter_pool(settings)
        app.state.pool = pool

        def start() -> None:
            try:
                pool.start()
            except ConversionError as exc:  # reported on first use: "pool is closed"
                log.error("LibreOffice pool did not start: %s", exc)

        starter = threading.Thread(target=start, daemon=True)
        starter.start()
        app.state.pool_started = starter
        app.state.signers = signer_processes(settings)
        background = asyncio.create_task(periodic_passes(settings))
        yield
        background.cancel()
        app.state.signers.shutdown(cancel_futures=True)
        pool.close()

    app = FastAPI(title="Countersign", version=version("countersign"), lifespan=lifespan,
                  description="会签 · document generation and per-party e-signatures")
    app.state.settings = settings
    app.state.login_codes = {}
    app.include_router(web_router)

    async def sign_in_first(request: Request, _: Exception) -> RedirectResponse:
        return RedirectResponse("/login", status_code=303)

    app.add_exception_handler(SignInNeeded, sign_in_first)
    app.add_exception_handler(CountersignError, countersign_error_handler)
    app.add_exception_handler(SigningError, countersign_error_handler)
    app.add_exception_handler(ApiError, api_error_handler)
    app.add_exception_handler(RequestValidationError, request_validation_handler)
    app.add_exception_handler(Exception, unexpected_error_handler)

    @app.get("/api/health", response_model=Health)
    def health() -> Health:
        return Health(status="ok", version=version("countersign"),
                      templates=len(list_templates()))

    @app.get("/api/templates", response_model=list[TemplateSummary])
    def templates() -> list[TemplateSummary]:
        return [TemplateSummary(**template.summary()) for template in list_templates()]

    @app.get("/api/templates/{key}", response_model=TemplateSummary)
    def template(key: str) -> TemplateSummary:
        return TemplateSummary(**get_template(key).summary())

    @app.get("/api/parties", response_model=list[PartyOut], dependencies=[READERS])
    def parties(settings: Settings = Depends(settings_of)) -> list[PartyOut]:
        return [PartyOut(**party.summary()) for party in list_parties(settings)]

    @app.post("/api/parties", response_model=PartyOut, status_code=201,
              dependencies=[ADMIN])
    def new_party(body: PartyIn, settings: Settings = Depends(settings_of)) -> PartyOut:
        return PartyOut(**add_party(settings, name=body.name, dept=body.dept, email=body.email,
                                    party_id=body.id, superior_email=body.superior_email,
                                    issue_cert=body.issue_cert,
                                    passphrase=body.passphrase).summary())

    @app.post("/api/documents", response_model=DocumentStatus, status_code=201)
    def new_document(body: CreateDocument, request: Request,
                     principal: Principal = CREATORS,
                     settings: Settings = Depends(settings_of)) -> dict:
        return create_document(settings, body.template, body.data,
                               [(b.role, b.party) for b in body.parties], pool_of(request),
                               actor=principal.party or f"admin:{principal.label}",
                               request_key=body.request_key, important=body.important)

    @app.get("/api/documents/{document_id}", response_model=DocumentStatus)
    def status(state: DocumentState = Depends(visible_document),
               settings: Settings = Depends(settings_of)) -> dict:
        return document_status(settings, state.id)

    @app.get("/api/documents/{document_id}/pdf", response_class=Response,
             responses={200: {"content": {"application/pdf": {}}}})
    def pdf(revision: int | None = None, state: DocumentState = Depends(visible_document),
            settings: Settings = Depends(settings_of)) -> Response:
        return Response(download_revision(settings, state.id, revision),
                        media_type="application/pdf",
                        headers={"Content-Disposition": f'attachment; filename="{state.id}.pdf"'})

    @app.get("/api/blocking", response_model=list[DocumentStatus])
    def blocking(limit: int | None = None, principal: Principal = Depends(caller),
                 settings: Settings = Depends(settings_of)) -> list[dict]:
        return blocking_documents(settings, limit,
                                  principal.party if principal.role == "party" else None)

    @app.post("/api/documents/{document_id}/sign", response_model=DocumentStatus)
    async def sign(body: SignRequest, request: Request,
                   state: DocumentState = Depends(visible_document),
                   principal: Principal = PARTY,
                   settings: Settings = Depends(settings_of)) -> dict:
        return await in_signer_process(request.app, sign_document, settings, state.id,
                                       principal.party, body.passphrase, body.revision)

    @app.post("/api/documents/{document_id}/upload", response_model=DocumentStatus,
              openapi_extra={"requestBody": {"content": {"application/pdf": {}}}})
    async def upload(request: Request, state: DocumentState = Depends(visible_document),
                     principal: Principal = PARTY,
                     settings: Settings = Depends(settings_of)) -> dict:
        path = await body_to_file(request, MAX_UPLOAD_BYTES, settings.data_dir / "incoming")
        try:
            return await run_in_threadpool(upload_countersigned, settings, state.id,
                                           principal.party, read_upload(path))
        finally:
            path.unlink(missing_ok=True)

    @app.post("/api/documents/{document_id}/decline", response_model=DocumentStatus)
    def decline(body: ReasonRequest, state: DocumentState = Depends(visible_document),
                principal: Principal = PARTY, settings: Settings = Depends(settings_of)
                ) -> dict:
        return decline_document(settings, state.id, principal.party, body.reason)

    @app.post("/api/documents/{document_id}/void", response_model=DocumentStatus)
    def void(body: ReasonRequest, state: DocumentState = Depends(visible_document),
             principal: Principal = ADMIN, settings: Settings = Depends(settings_of)) -> dict:
        return void_document(settings, state.id, f"admin:{principal.label}", body.reason,
                             admin=True)

    @app.post("/api/documents/{document_id}/close", response_model=DocumentStatus)
    def close(request: Request, state: DocumentState = Depends(visible_document),
              principal: Principal = ADMIN, settings: Settings = Depends(settings_of)) -> dict:
        return close_document(settings, state.id, pool_of(request),
                              f"admin:{principal.label}")

    @app.get("/api/documents/{document_id}/verify", response_model=Verdict,
             dependencies=[READERS])
    def verify_stored(state: DocumentState = Depends(visible_document),
                      settings: Settings = Depends(settings_of)) -> dict:
        return verify_document(settings, state.id)

    @app.post("/api/verify", response_model=Verdict, dependencies=[Depends(caller)],
              openapi_extra={"requestBody": {"content": {"application/pdf": {}}}})
    async def verify_file(request: Request, settings: Settings = Depends(settings_of)) -> dict:
        path = await body_to_file(request, MAX_UPLOAD_BYTES, settings.data_dir / "incoming")
        try:
            return await run_in_threadpool(verify_bytes, settings, read_upload(path))
        finally:
            path.unlink(missing_ok=True)

    app.state.jobs = JobBoard()

    @app.post("/api/bulk/{template_key}", status_code=202, dependencies=[ADMIN],
              openapi_extra={"requestBody": {"content": {"application/x-ndjson": {}}}})
    async def bulk(template_key: str, request: Request,
                   settings: Settings = Depends(settings_of)) -> dict:
        """Start generating one PDF per JSONL line; poll /api/jobs/{id} for progress."""
        rows = await body_to_file(request, MAX_UPLOAD_BYTES, settings.data_dir / "incoming",
                                  suffix=".jsonl")
        pool = await run_in_threadpool(pool_of, request)
        return request.app.state.jobs.start_bulk(settings, template_key, rows, pool).as_dict()

    @app.get("/api/jobs/{job_id}", dependencies=[ADMIN])
    def job(job_id: str, request: Request) -> dict:
        found = request.app.state.jobs.get(job_id)
        if found is None:
            raise ApiError(404, "unknown_job", f"未知任务 {job_id!r}", f"unknown job {job_id!r}")
        return found.as_dict()

    @app.get("/api/ledger/verify", response_model=LedgerVerdict, dependencies=[READERS])
    def ledger(settings: Settings = Depends(settings_of)) -> LedgerVerdict:
        report = verify_ledger(settings)
        return LedgerVerdict(ok=report.ok, events=report.events, revisions=report.revisions,
                             problems=report.problems)

    return app
