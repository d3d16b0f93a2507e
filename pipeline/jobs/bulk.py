"""Bulk generation as a job: one draft PDF per row, resumable.

The rows travel with the job record (its input), so that any consumer on any machine can
run the job, and each finished row is recorded as it finishes. A job taken over after its
consumer died skips the rows recorded already: no row is produced twice. A row whose PDF
was written but not yet recorded when the consumer died is made again under the same name
(the file is replaced, atomically), so each row still ends as one file.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from pipeline.config import Settings
from pipeline.forms.bulk_input import read_rows
from pipeline.forms.manifest import get_template
from pipeline.jobs.record import JobKind, JobSpec, Lease, stamp, submit, utc_now
from pipeline.record import database
from pipeline.record import jobs as records
from pipeline.render.generation import RowResult, bulk_generate

ROW_SUFFIXES = (".csv", ".jsonl", ".ndjson")


class Interrupted(Exception):
    """The consumer is stopping, or lost the job: what is not recorded is left to the
    consumer that takes the job next."""


def job_folder(settings: Settings, job_id: str) -> Path:
    """Return the folder a job's files are written to."""
    return settings.data_dir / "jobs" / job_id


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
    """Generate the rows of the leased bulk job that are not recorded yet, recording each
    as it finishes; return the summary {succeeded, failed}. Raises Interrupted when
    ``stopping`` is set or the lease is lost before every row is recorded."""
    job = lease.job
    template = get_template(job["params"]["template"])
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
        with database.connection(settings.database) as conn:
            records.record_row(conn, job["id"], {
                "line": result.line, "number": result.number, "error": result.error,
                "file": result.path.name if result.path else None}, stamp(utc_now()))

    if rows:
        bulk_generate(template, rows, job_folder(settings, job["id"]), pool, settings,
                      on_done=record)
    with database.connection(settings.database) as conn:
        finished = records.select_rows(conn, job["id"])
    if len(finished) < job["total"]:
        raise Interrupted(job["id"])
    failed = sum(1 for row in finished if row["error"] is not None)
    return {"succeeded": len(finished) - failed, "failed": failed,
            "folder": str(job_folder(settings, job["id"]))}
