"""Audits: ``POST /api/verify`` (any PDF) and ``GET /api/ledger/verify`` (the chain, every
stored revision and every anchor of the chain head). A ledger document's own audit is
``GET /api/documents/{id}/verify``."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool

from api.deps import permitted, settings_of
from api.models import LedgerVerdict, Verdict
from api.streaming import body_to_file
from pipeline.config import Settings
from pipeline.documents.repository import verify_ledger
from pipeline.documents.uploads import read_upload
from pipeline.people.policy import Action

router = APIRouter(prefix="/api", tags=["verify"])


@router.post("/verify", response_model=Verdict, dependencies=[permitted(Action.VERIFY_FILE)],
             openapi_extra={"requestBody": {"content": {"application/pdf": {}}}})
async def verify_file(request: Request, settings: Settings = Depends(settings_of)) -> dict:
    """Verify any PDF in the budgeted verification workers (503 when they are all busy and
    the queue is full), never in the server's own threads."""
    path = await body_to_file(request, settings.max_upload_bytes,
                              settings.data_dir / "incoming")
    try:
        data = await run_in_threadpool(read_upload, path, settings.max_upload_bytes)
    finally:
        path.unlink(missing_ok=True)
    return await request.app.state.verifier.verify(data)


@router.get("/ledger/verify", response_model=LedgerVerdict,
            dependencies=[permitted(Action.VERIFY_LEDGER)])
def ledger(settings: Settings = Depends(settings_of)) -> LedgerVerdict:
    report = verify_ledger(settings)
    return LedgerVerdict(ok=report.ok, events=report.events, revisions=report.revisions,
                         problems=report.problems, anchors=report.anchors,
                         anchored_through=report.anchored_through,
                         unanchored=report.unanchored)
