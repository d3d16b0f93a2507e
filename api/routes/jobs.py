"""``/api/bulk/{template}`` queues generating one PDF per JSONL line as a job;
``/api/jobs/{id}`` reports its progress, from the job records (any server answers for a job
another accepted)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool

from api.deps import permitted, settings_of
from api.errors import ApiError
from api.streaming import body_to_file
from pipeline.config import Settings
from pipeline.jobs.bulk import accept_bulk
from pipeline.jobs.record import report
from pipeline.people.access import Principal
from pipeline.people.policy import Action

router = APIRouter(prefix="/api", tags=["jobs"])


@router.post("/bulk/{template_key}", status_code=202,
             openapi_extra={"requestBody": {"content": {"application/x-ndjson": {}}}})
async def bulk(template_key: str, request: Request,
               principal: Principal = permitted(Action.BULK),
               settings: Settings = Depends(settings_of)) -> dict:
    """Queue generating one PDF per JSONL line; poll /api/jobs/{id} for progress."""
    rows = await body_to_file(request, settings.max_upload_bytes,
                              settings.data_dir / "incoming", suffix=".jsonl")
    # Reading and checking the rows is the caller's input parsed: off the event loop.
    return await run_in_threadpool(accept_bulk, settings, template_key, rows, principal.actor)


@router.get("/jobs/{job_id}", dependencies=[permitted(Action.BULK)])
def job(job_id: str, settings: Settings = Depends(settings_of)) -> dict:
    """A job's status and progress: queued, running, done or failed; rows done of total."""
    found = report(settings, job_id)
    if found is None:
        raise ApiError(404, "unknown_job", f"未知任务 {job_id!r}", f"unknown job {job_id!r}")
    return found
