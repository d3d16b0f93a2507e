"""``/api/bulk/{template}`` queues generating one PDF per JSONL line as a job;
``/api/jobs/{id}`` reports its progress, from the job records, and
``/api/jobs/{id}/files/{name}`` and ``/api/jobs/{id}/files.zip`` hand out its PDFs from the
store — any server answers for a job another accepted and a worker elsewhere ran."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from api.deps import permitted, settings_of
from api.streaming import body_to_file
from pipeline.config import Settings
from pipeline.jobs.bulk import accept_bulk
from pipeline.jobs.outputs import job_file, job_zip, seen_job
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


@router.get("/jobs/{job_id}")
def job(job_id: str, principal: Principal = permitted(Action.BULK),
        settings: Settings = Depends(settings_of)) -> dict:
    """A job's status and progress: queued, running, done or failed; rows done of total;
    each finished bulk row's file with its SHA-256 and where to download it."""
    found = seen_job(settings, principal, job_id)
    for row in found["results"]:
        row["url"] = (f"/api/jobs/{quote(job_id)}/files/{quote(row['file'])}"
                      if row["file"] and row["sha256"] else None)
    found["zip"] = f"/api/jobs/{quote(job_id)}/files.zip" if found["kind"] == "bulk" else None
    return found


@router.get("/jobs/{job_id}/files.zip",
            responses={200: {"content": {"application/zip": {}}}})
def job_files_zip(job_id: str, principal: Principal = permitted(Action.BULK),
                  settings: Settings = Depends(settings_of)) -> StreamingResponse:
    """Every PDF the job has made so far, in one ZIP (made while it is sent)."""
    pieces = job_zip(settings, principal, job_id)
    return StreamingResponse(pieces, media_type="application/zip",
                             headers=_attachment(f"{job_id}.zip"))


@router.get("/jobs/{job_id}/files/{name:path}",
            responses={200: {"content": {"application/pdf": {}}}})
def job_file_download(job_id: str, name: str, principal: Principal = permitted(Action.BULK),
                      settings: Settings = Depends(settings_of)) -> StreamingResponse:
    """One PDF of a bulk job, by the name its row gives (``results[].file``); any other
    name, slashes and all, is only looked up and not found."""
    found = job_file(settings, principal, job_id, name)
    return StreamingResponse(found.chunks(), media_type="application/pdf",
                             headers={**_attachment(found.name), "ETag": f'"{found.sha256}"',
                                      "Content-Length": str(len(found.data))})


def _attachment(name: str) -> dict[str, str]:
    """Return the Content-Disposition of a download named ``name``: an ASCII fallback and
    the real (Chinese) name encoded as RFC 6266 asks."""
    fallback = name.encode("ascii", "replace").decode().replace("?", "_").replace('"', "_")
    return {"Content-Disposition":
            f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name)}"}
