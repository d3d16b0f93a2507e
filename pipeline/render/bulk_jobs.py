"""Long work as jobs: bulk generation runs in the background and reports its progress."""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.config import Settings
from pipeline.errors import KNOWN_ERRORS
from pipeline.forms.bulk_input import read_rows
from pipeline.forms.manifest import get_template
from pipeline.render.generation import RowResult, bulk_generate
from pipeline.render.libreoffice import ConverterPool


@dataclass
class Job:
    id: str
    template: str
    total: int
    status: str = "running"  # running, done, failed
    done: int = 0
    results: list[RowResult] = field(default_factory=list)
    error: str | None = None

    def as_dict(self) -> dict:
        return {"id": self.id, "template": self.template, "status": self.status,
                "total": self.total, "done": self.done,
                "succeeded": sum(1 for r in self.results if r.error is None),
                "failed": sum(1 for r in self.results if r.error is not None),
                "error": self.error,
                "results": [{"line": r.line, "number": r.number, "error": r.error,
                             "file": r.path.name if r.path else None} for r in self.results]}


class JobBoard:
    """The jobs of one service process (they are not kept across restarts)."""

    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def start_bulk(self, settings: Settings, template_key: str, rows_file: Path,
                   pool: ConverterPool) -> Job:
        """Start generating one PDF per row of ``rows_file``; return the job at once."""
        template = get_template(template_key)
        rows = list(read_rows(rows_file, template))
        job = Job(id=f"job-{secrets.token_hex(6)}", template=template.key, total=len(rows))
        with self._lock:
            self._jobs[job.id] = job

        def progress(result: RowResult) -> None:
            with self._lock:
                job.done += 1

        def run() -> None:
            try:
                summary = bulk_generate(template, rows, job_folder(settings, job.id), pool,
                                        settings, on_done=progress)
                job.results, job.status = summary.results, "done"
            except KNOWN_ERRORS as exc:
                job.status, job.error = "failed", str(exc)
            finally:
                rows_file.unlink(missing_ok=True)

        threading.Thread(target=run, daemon=True).start()
        return job


def job_folder(settings: Settings, job_id: str) -> Path:
    return settings.data_dir / "jobs" / job_id
