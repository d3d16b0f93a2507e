"""``/api/bulk/{template}`` starts generating one PDF per JSONL line as a job;
``/api/jobs/{id}`` reports its progress."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool

from api.deps import permitted, settings_of
from api.errors import ApiError
from api.streaming import body_to_file
from api.workers import pool_of
from pipeline.config import Settings
from pipeline.people.policy import Action

router = APIRouter(prefix="/api", tags=["jobs"], dependencies=[permitted(Action.BULK)])


@router.post("/bulk/{template_key}", status_code=202,
             openapi_extra={"requestBody": {"content": {"application/x-ndjson": {}}}})
async def bulk(template_key: str, request: Request,
               settings: Settings = Depends(settings_of)) -> dict:
    """Start generating one PDF per JSONL line; poll /api/jobs/{id} for progress."""
    rows = await body_to_file(request, settings.max_upload_bytes,
                              settings.data_dir / "incoming", suffix=".jsonl")
    pool = await run_in_threadpool(pool_of, request)
    # Reading and checking the rows is the caller's input parsed: off the event loop.
    job = await run_in_threadpool(request.app.state.jobs.start_bulk, settings, template_key,
                                  rows, pool)
    return job.as_dict()


@router.get("/jobs/{job_id}")
def job(job_id: str, request: Request) -> dict:
    found = request.app.state.jobs.get(job_id)
    if found is None:
        raise ApiError(404, "unknown_job", f"未知任务 {job_id!r}", f"unknown job {job_id!r}")
    return found.as_dict()
