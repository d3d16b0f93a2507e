"""``/api/documents``: list and search documents, create one, read its status, PDF and
archive, and take its steps; and ``/api/blocking``, every open document the caller sees.

Who may do what is the policy's (``api.deps.on_document`` asks it); each route then calls
one use case. Signing and the checking of uploads run in signer processes, so neither the
event loop nor the thread pool is held by an outsider's PDF.
"""

from __future__ import annotations

from datetime import date

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from api.deps import OnDocument, caller, on_document, permitted, settings_of
from api.gate import client_of
from api.models import (
    CreateDocument,
    HoldRequest,
    ReasonRequest,
    ReassignRequest,
    ResolveRequest,
    ReviseRequest,
    SignRequest,
    Verdict,
)
from api.streaming import body_to_file
from api.workers import in_signer_process, pool_of, sign_in_worker
from pipeline.audit.bundle import bundle_bytes
from pipeline.audit.verify import verify_document
from pipeline.config import Settings
from pipeline.documents.close import certificate_of_completion, close_document
from pipeline.documents.create import create_document
from pipeline.documents.hold import set_legal_hold
from pipeline.documents.listing import SORTS, DocumentPage, DocumentQuery, list_documents
from pipeline.documents.repository import blocking_documents, document_status, download_revision
from pipeline.documents.resolve import resolve_document
from pipeline.documents.revise import revise_document
from pipeline.documents.state import Status
from pipeline.documents.status import DocumentStatus
from pipeline.documents.steps import decline_document, reassign_step, void_document
from pipeline.documents.uploads import read_upload, upload_countersigned
from pipeline.jobs.tasks import submit_close
from pipeline.people.access import Principal, Role
from pipeline.people.policy import Action, party_filter

router = APIRouter(prefix="/api", tags=["documents"])
PDF_BODY = {"requestBody": {"content": {"application/pdf": {}}}}


@router.get("/documents", response_model=DocumentPage)
def documents(status: Status | None = None, template: str = "", party: str = "",
              number: str = Query("", description="Part of the document number."),
              q: str = Query("", description="Words to find in the number, the template's "
                             "title and the parties' ids and names."),
              created_from: date | None = None, created_to: date | None = None,
              sort: str = Query("-created", description=f"One of {', '.join(SORTS)}; ties "
                                "are broken by id, so pages never overlap."),
              limit: int = Query(50, ge=1, le=200), offset: int = Query(0, ge=0),
              principal: Principal = permitted(Action.LIST_DOCUMENTS),
              settings: Settings = Depends(settings_of)) -> DocumentPage:
    """Every document the caller may see, open or ended, filtered, sorted and paged."""
    return list_documents(settings, DocumentQuery(
        status=status or "", template=template, party=party, number=number, text=q,
        created_from=created_from, created_to=created_to, sort=sort, limit=limit,
        offset=offset), visible_to=party_filter(principal))


@router.post("/documents", response_model=DocumentStatus, status_code=201)
def new_document(body: CreateDocument, request: Request,
                 principal: Principal = permitted(Action.CREATE_DOCUMENT),
                 settings: Settings = Depends(settings_of)) -> DocumentStatus:
    return create_document(settings, body.template, body.data,
                           [(b.role, b.party) for b in body.parties], pool_of(request),
                           actor=principal.actor, request_key=body.request_key,
                           important=body.important)


@router.get("/documents/{document_id}", response_model=DocumentStatus)
def status(allowed: OnDocument = on_document(Action.READ_DOCUMENT),
           settings: Settings = Depends(settings_of)) -> DocumentStatus:
    return document_status(settings, allowed.state.id)


@router.get("/documents/{document_id}/pdf", response_class=Response,
            responses={200: {"content": {"application/pdf": {}}}})
def pdf(revision: int | None = None, allowed: OnDocument = on_document(Action.READ_DOCUMENT),
        settings: Settings = Depends(settings_of)) -> Response:
    document_id = allowed.state.id
    return Response(download_revision(settings, document_id, revision),
                    media_type="application/pdf",
                    headers={"Content-Disposition": f'attachment; filename="{document_id}.pdf"'})


@router.get("/blocking", response_model=list[DocumentStatus])
def blocking(limit: int | None = None, principal: Principal = Depends(caller),
             settings: Settings = Depends(settings_of)) -> list[DocumentStatus]:
    return blocking_documents(settings, limit, party_filter(principal))


@router.post("/documents/{document_id}/sign", response_model=DocumentStatus)
async def sign(body: SignRequest, request: Request,
               allowed: OnDocument = on_document(Action.SIGN),
               settings: Settings = Depends(settings_of)) -> DocumentStatus:
    return await sign_in_worker(request.app, settings, allowed.state.id,
                                allowed.principal.party, body.passphrase, body.revision,
                                client_of(request))


@router.post("/documents/{document_id}/upload", response_model=DocumentStatus,
             openapi_extra=PDF_BODY)
async def upload(request: Request, allowed: OnDocument = on_document(Action.UPLOAD),
                 settings: Settings = Depends(settings_of)) -> DocumentStatus:
    limit = settings.max_upload_bytes
    path = await body_to_file(request, limit, settings.data_dir / "incoming")
    try:
        data = await run_in_threadpool(read_upload, path, limit)
    finally:
        path.unlink(missing_ok=True)
    # Checking an upload parses and validates an outsider's PDF: a signer process's work.
    return await in_signer_process(request.app, upload_countersigned, settings,
                                   allowed.state.id, allowed.principal.party, data)


@router.post("/documents/{document_id}/decline", response_model=DocumentStatus)
def decline(body: ReasonRequest, allowed: OnDocument = on_document(Action.DECLINE),
            settings: Settings = Depends(settings_of)) -> DocumentStatus:
    return decline_document(settings, allowed.state.id, allowed.principal.party, body.reason)


def _admin(allowed: OnDocument) -> bool:
    return allowed.principal.role is Role.ADMIN


@router.post("/documents/{document_id}/void", response_model=DocumentStatus)
def void(body: ReasonRequest, allowed: OnDocument = on_document(Action.VOID),
         settings: Settings = Depends(settings_of)) -> DocumentStatus:
    """Void before closure, with a reason: the document's creator or an administrator."""
    return void_document(settings, allowed.state.id, allowed.principal.actor, body.reason,
                         admin=_admin(allowed))


@router.post("/documents/{document_id}/reassign", response_model=DocumentStatus)
def reassign(body: ReassignRequest, allowed: OnDocument = on_document(Action.REASSIGN),
             settings: Settings = Depends(settings_of)) -> DocumentStatus:
    """Give an unsigned step to a party of the same department: the creator, the party
    whose step it is, or an administrator."""
    return reassign_step(settings, allowed.state.id, body.field, body.to,
                         allowed.principal.actor, body.reason, admin=_admin(allowed))


@router.post("/documents/{document_id}/resolve", response_model=DocumentStatus)
def resolve(body: ResolveRequest, request: Request,
            allowed: OnDocument = on_document(Action.RESOLVE),
            settings: Settings = Depends(settings_of)) -> DocumentStatus:
    """Record an issue's result (结果确认) before the responsible department signs: that
    department's party or an administrator; the unsigned document is rendered again."""
    return resolve_document(settings, allowed.state.id, body.text, allowed.principal.actor,
                            pool_of(request), admin=_admin(allowed))


@router.post("/documents/{document_id}/revise", response_model=DocumentStatus,
             status_code=201)
def revise(body: ReviseRequest, request: Request,
           allowed: OnDocument = on_document(Action.REVISE),
           settings: Settings = Depends(settings_of)) -> DocumentStatus:
    """Make the next version of a declined document (its number with 第N版): its creator
    or an administrator. Answers the new document's status."""
    bindings = [(b.role, b.party) for b in body.parties] if body.parties else None
    return revise_document(settings, allowed.state.id, body.data, allowed.principal.actor,
                           pool_of(request), bindings, admin=_admin(allowed))


@router.get("/documents/{document_id}/certificate", response_class=Response,
            responses={200: {"content": {"application/pdf": {}}}})
def certificate(allowed: OnDocument = on_document(Action.READ_ARCHIVE),
                settings: Settings = Depends(settings_of)) -> Response:
    """The sealed certificate of completion of a closed document."""
    return Response(certificate_of_completion(settings, allowed.state.id),
                    media_type="application/pdf", headers={
                        "Content-Disposition":
                            f'attachment; filename="{allowed.state.id}-certificate.pdf"'})


@router.get("/documents/{document_id}/bundle", response_class=Response,
            responses={200: {"content": {"application/zip": {}}}})
def bundle(allowed: OnDocument = on_document(Action.READ_ARCHIVE),
           settings: Settings = Depends(settings_of)) -> Response:
    """The offline audit bundle of a closed document (verify it with verify-bundle)."""
    data, _ = bundle_bytes(settings, allowed.state.id)
    return Response(data, media_type="application/zip", headers={
        "Content-Disposition": f'attachment; filename="{allowed.state.id}-bundle.zip"'})


@router.post("/documents/{document_id}/close", response_model=DocumentStatus,
             responses={202: {"description": "With ``Prefer: respond-async``: the closing "
                                             "job, to follow at /api/jobs/{id}"}})
def close(request: Request, allowed: OnDocument = on_document(Action.CLOSE),
          settings: Settings = Depends(settings_of),
          prefer: str | None = Header(default=None)) -> DocumentStatus | JSONResponse:
    """Close the document (closure rules, B-LTA, archive) and answer its status; with
    ``Prefer: respond-async`` (RFC 7240) queue the closing as a job and answer 202 with it."""
    if prefer and "respond-async" in prefer.lower():
        job = submit_close(settings, allowed.state.id, allowed.principal.actor)
        return JSONResponse(job, status_code=202, headers={
            "Location": f"/api/jobs/{job['id']}", "Preference-Applied": "respond-async"})
    return close_document(settings, allowed.state.id, pool_of(request),
                          allowed.principal.actor)


@router.post("/documents/{document_id}/hold", response_model=DocumentStatus)
def hold(body: HoldRequest, allowed: OnDocument = on_document(Action.HOLD),
         settings: Settings = Depends(settings_of)) -> DocumentStatus:
    """Set (``{"on": true}``) or lift the legal hold on an archived document."""
    return set_legal_hold(settings, allowed.state.id, body.on, allowed.principal.actor)


@router.get("/documents/{document_id}/verify", response_model=Verdict)
def verify_stored(allowed: OnDocument = on_document(Action.VERIFY_DOCUMENT),
                  settings: Settings = Depends(settings_of)) -> dict:
    # A GET reads: the audit is not recorded (``countersign verify --document`` records one).
    return verify_document(settings, allowed.state.id)
