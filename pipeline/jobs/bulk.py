"""Bulk generation as a job: one draft PDF per row, resumable, kept in the store.

The rows travel with the job record (its input), so that any consumer on any machine can
run the job, and each finished row is recorded as it finishes — with its PDF put in the
store first (``bulk/``, by SHA-256), so that any server can hand the file out
(``jobs.outputs``). A job taken over after its consumer died skips the rows recorded
already: no row is produced twice. A row made but not yet recorded when the consumer died
is made again under the same name; bytes stored already are never written again.

The PDFs are written by the conversions into a scratch folder of the run,
``data/jobs/<job id>-<random>/``, each removed once stored and recorded, the folder when the
run ends. A worker killed outright leaves its folder behind: the next bulk run on that
machine removes it, once its job is over or when it takes that job over.
"""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
from pathlib import Path

from pipeline.config import Settings
from pipeline.errors import KNOWN_ERRORS
from pipeline.forms.bulk_input import read_rows
from pipeline.forms.manifest import get_template
from pipeline.jobs.record import JobKind, JobSpec, JobStatus, Lease, stamp, submit, utc_now
from pipeline.record import database
from pipeline.record import jobs as records
from pipeline.record.backends import open_store
from pipeline.record.store import Store
from pipeline.render.generation import RowResult, bulk_generate

log = logging.getLogger(__name__)
ROW_SUFFIXES = (".csv", ".jsonl", ".ndjson")
# A scratch folder's name: the job's id, then what makes each run's folder its own.
SCRATCH_NAME = re.compile(r"(job-[0-9a-f]+)-")


class Interrupted(Exception):
    """The consumer is stopping, lost the job, or could not store a row's PDF: what is not
    recorded is left to the consumer that takes the job next."""


def scratch_root(settings: Settings) -> Path:
    """Return the folder that holds the bulk runs' scratch folders on this machine."""
    return settings.data_dir / "jobs"


def sweep_scratch(settings: Settings, taking: str) -> list[str]:
    """Remove the scratch folders that no run will use again: those of jobs that are over
    (done, failed, or unknown) and the earlier ones of job ``taking``, which this run now
    holds — a consumer killed outright leaves its folder behind. Return their names."""
    root = scratch_root(settings)
    found = [p for p in root.iterdir() if p.is_dir() and SCRATCH_NAME.match(p.name)] \
        if root.is_dir() else []
    removed = []
    with database.connection(settings.database) as conn:
        for folder in found:
            job_id = SCRATCH_NAME.match(folder.name).group(1)
            job = records.select_job(conn, job_id) if job_id != taking else None
            if job_id == taking or job is None or job["status"] in (JobStatus.DONE,
                                                                    JobStatus.FAILED):
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder.name)
    return removed


def accept_bulk(settings: Settings, template_key: str, rows_file: Path,
                created_by: str | None = None) -> dict:
    """Check the template and the rows file, record the bulk job with the rows as its input
    and queue it; return the job's report. The rows file is removed.

    Raises UnknownTemplate or BadInput (an unreadable rows file) before anything is recorded.
    """
    try:
        template = get_template(template_key)
        total = sum(1 for _ in read_rows(rows_file, template))
        data = rows_file.read_bytes()
    finally:
        rows_file.unlink(missing_ok=True)
    return submit(settings, JobSpec(JobKind.BULK, {"template": template.key,
                                                   "suffix": rows_file.suffix.lower()},
                                    total=total, data=data, created_by=created_by))


def run_bulk(settings: Settings, lease: Lease, pool, stopping) -> dict:
    """Generate the rows of the leased bulk job that are not recorded yet, storing each
    PDF and recording its row as it finishes; return the summary {succeeded, failed}.
    Raises Interrupted when ``stopping`` is set, the lease is lost, or a row could not be
    stored, before every row is recorded (the next take makes what is missing)."""
    job = lease.job
    template = get_template(job["params"]["template"])
    store = open_store(settings)
    with database.connection(settings.database) as conn:
        data = records.job_input(conn, job["id"]) or b""
        recorded = {row["line"] for row in records.select_rows(conn, job["id"])}
    suffix = job["params"].get("suffix", ".jsonl")
    with tempfile.TemporaryDirectory(prefix="countersign-bulk-") as scratch:
        rows_file = Path(scratch) / f"rows{suffix if suffix in ROW_SUFFIXES else '.jsonl'}"
        rows_file.write_bytes(data)
        rows = [row for row in read_rows(rows_file, template) if row.line not in recorded]

    def record(result: RowResult) -> None:
        if stopping.is_set() or lease.lost.is_set():
            return  # a conversion ended by the pool closing is not this row's outcome
        row = {"line": result.line, "number": result.number, "error": result.error}
        if result.path is not None:
            stored = _store(store, job["id"], result)
            if stored is None:
                return
            row.update(file=result.path.name, sha256=stored)
        with database.connection(settings.database) as conn:
            records.record_row(conn, job["id"], row, stamp(utc_now()))
        if result.path is not None:
            result.path.unlink(missing_ok=True)

    if rows:
        sweep_scratch(settings, taking=job["id"])
        root = scratch_root(settings)
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=f"{job['id']}-", dir=root) as folder:
            bulk_generate(template, rows, Path(folder), pool, settings, on_done=record)
    with database.connection(settings.database) as conn:
        finished = records.select_rows(conn, job["id"])
    if len(finished) < job["total"]:
        raise Interrupted(job["id"])
    failed = sum(1 for row in finished if row["error"] is not None)
    return {"succeeded": len(finished) - failed, "failed": failed}


def _store(store: Store, job_id: str, result: RowResult) -> str | None:
    """Put the row's PDF in the store; return its SHA-256, or None (logged) when the store
    refused or did not answer — the row stays unrecorded, for the next take to make."""
    assert result.path is not None
    try:
        return store.put_bulk(result.path.read_bytes())
    except (OSError, *KNOWN_ERRORS) as exc:
        log.warning("job %s, line %s: the PDF was not stored, the row is left for the next "
                    "attempt: %s", job_id, result.line, exc)
        return None
