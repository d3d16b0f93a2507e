"""Use cases that turn form data into PDFs without the ledger: ``generate`` and ``bulk``.

validate → number → render .docx → convert to PDF/A. The CLI and the API call these and
nothing else; they decide nothing of their own.

``bulk`` output is never tracked (no parties, no signatures, no ledger), so it never takes
an official number: every row is a draft numbered ``…-草稿``. Official numbers belong to the
documents the ledger follows (``create``).
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from pipeline.config import Settings
from pipeline.errors import KNOWN_ERRORS, CountersignError, ValidationFailed, as_pipeline_error
from pipeline.forms.bulk_input import Row
from pipeline.forms.manifest import Template, get_template
from pipeline.forms.numbering import allocate_number, draft_number
from pipeline.forms.validate import validate_form
from pipeline.record import database
from pipeline.record.files import write_atomic
from pipeline.render.docx import render_docx
from pipeline.render.libreoffice import ConverterPool, PoolSpec

# Uses every font and table feature the shipped templates use.
WARMUP_TEMPLATE = "meeting_minutes"


@dataclass(frozen=True)
class Generated:
    """A rendered document: its number, the .docx and the PDF bytes."""

    number: str
    docx: bytes
    pdf: bytes


def converter_pool(settings: Settings, size: int | None = None, warm: bool = True
                   ) -> ConverterPool:
    """Return an unstarted pool configured by ``settings``.

    ``warm`` has each worker convert a shipped template once before taking work: worth it
    for a pool that serves many documents, not for a one-off ``generate``.
    """
    return ConverterPool(PoolSpec(
        size=settings.pool_size if size is None else size,
        timeout_s=settings.conversion_timeout_s,
        recycle_after=settings.conversions_per_process,
        warmup=get_template(WARMUP_TEMPLATE).docx_path if warm else None,
    ))


def today_in(settings: Settings) -> date:
    """Return today's date in the deployment's time zone (numbers use its year)."""
    return datetime.now(settings.zone).date()


def generate_document(template: Template, data: Any, pool: ConverterPool, settings: Settings,
                      *, draft: bool = False, conn: sqlite3.Connection | None = None
                      ) -> Generated:
    """Validate ``data``, number it, render and convert it; return the result.

    A draft takes no number from the sequence (its number reads ``…-草稿``). Raises
    ValidationFailed before anything is numbered or rendered.
    """
    form = validate_form(template, data)
    today = today_in(settings)
    if draft:
        number = draft_number(template, form, today)
    else:
        own = conn is None
        conn = conn or database.connect(settings.database_path)
        try:
            number = allocate_number(conn, template, form, today)
        finally:
            if own:
                conn.close()
    docx = render_docx(template, form, number)
    return Generated(number=number, docx=docx, pdf=pool.convert(docx))


def safe_filename(number: str) -> str:
    """Return ``number`` usable as a file name on every platform."""
    return re.sub(r'[\\/:*?"<>|\s]+', "_", number).strip("._") or "document"


@dataclass(frozen=True)
class RowResult:
    line: int
    number: str | None = None
    path: Path | None = None
    error: str | None = None


@dataclass
class BulkSummary:
    """What ``bulk`` did: one result per input row, in input order."""

    results: list[RowResult] = field(default_factory=list)

    @property
    def succeeded(self) -> int:
        return sum(1 for result in self.results if result.error is None)

    @property
    def failed(self) -> int:
        return len(self.results) - self.succeeded


def _describe(error: CountersignError) -> str:
    error = as_pipeline_error(error)
    if isinstance(error, ValidationFailed):
        return "; ".join(str(problem) for problem in error.problems)
    return str(error)


def bulk_generate(template: Template, rows: Iterable[Row], out_dir: Path, pool: ConverterPool,
                  settings: Settings, *,
                  on_done: Callable[[RowResult], None] | None = None) -> BulkSummary:
    """Generate one draft PDF per row into ``out_dir`` (named ``<draft number>-<line>.pdf``).

    Rows run concurrently, as many as the pool has workers. A bad row is recorded with its
    line number and the others go on. ``on_done`` is called once per row as it finishes
    (the CLI's progress bar).
    """
    out_dir.mkdir(parents=True, exist_ok=True)

    def one(row: Row) -> RowResult:
        if row.error is not None:
            return RowResult(row.line, error=row.error)
        try:
            document = generate_document(template, row.form, pool, settings, draft=True)
        except KNOWN_ERRORS as exc:
            return RowResult(row.line, error=_describe(exc))
        name = f"{safe_filename(document.number)}-{row.line}"
        path = write_atomic(out_dir / f"{name}.pdf", document.pdf)
        return RowResult(row.line, number=document.number, path=path)

    results: list[RowResult] = []
    with ThreadPoolExecutor(max_workers=pool.spec.workers) as executor:
        futures = [executor.submit(one, row) for row in rows]
        for future in as_completed(futures):
            result = future.result()
            results.append(result)
            if on_done:
                on_done(result)
    return BulkSummary(sorted(results, key=lambda result: result.line))
