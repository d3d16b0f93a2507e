"""Use cases that turn form data into PDFs without the ledger: ``generate`` and ``bulk``.

validate → number → render .docx → convert to PDF/A. The CLI and the API call these and
nothing else; they decide nothing of their own.

``bulk`` output is never tracked (no parties, no signatures, no ledger), so it never takes
an official number: every row is a draft numbered ``…-草稿``. Official numbers belong to the
documents the ledger follows (``create``).
"""

from __future__ import annotations

import queue
import re
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection

from pipeline.config import Settings
from pipeline.errors import KNOWN_ERRORS, CountersignError, ValidationFailed, as_pipeline_error
from pipeline.forms.bulk_input import Row
from pipeline.forms.manifest import Template, get_template
from pipeline.forms.numbering import allocate_number, draft_number, today_in
from pipeline.forms.validate import validate_form
from pipeline.record import database
from pipeline.record.files import write_atomic
from pipeline.render.libreoffice import ConverterPool, PoolSpec

# Uses every font and table feature the shipped templates use.
WARMUP_TEMPLATE = "meeting_minutes"
# Rows rendered ahead of the conversions, per LibreOffice worker.
RENDER_AHEAD = 3


@dataclass(frozen=True)
class Generated:
    """A rendered document: its number, the .docx and the PDF bytes."""

    number: str
    docx: bytes
    pdf: bytes


def converter_pool(settings: Settings, size: int | None = None, warm: bool = True
                   ) -> ConverterPool:
    """Return an unstarted pool configured by ``settings``, its workers' prepared profile
    kept in the data folder's ``cache/``.

    ``warm`` has each worker convert a shipped template once before taking work: worth it
    for a pool that serves many documents, not for a one-off ``generate``.
    """
    return ConverterPool(PoolSpec(
        size=settings.pool_size if size is None else size,
        timeout_s=settings.conversion_timeout_s,
        recycle_after=settings.conversions_per_process,
        warmup=get_template(WARMUP_TEMPLATE).docx_path if warm else None,
        profile_cache=settings.data_dir / "cache",
    ))


def generate_document(template: Template, data: Any, pool: ConverterPool, settings: Settings,
                      *, draft: bool = False, conn: Connection | None = None
                      ) -> Generated:
    """Validate ``data``, number it, render and convert it; return the result.

    A draft takes no number from the sequence (its number reads ``…-草稿``). Raises
    ValidationFailed before anything is numbered or rendered.
    """
    from pipeline.render.docx import render_docx  # see _render_row

    form = validate_form(template, data)
    today = today_in(settings)
    if draft:
        number = draft_number(template, form, today)
    else:
        own = conn is None
        conn = conn or database.connect(settings.database)
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

    This thread validates each row, gives it its draft number and renders it, a few rows
    ahead of the conversions (rendering is a few milliseconds of Python against tens of
    milliseconds of LibreOffice per document, so the threads feeding LibreOffice seldom
    wait for the GIL). Conversions run as many at a time as the pool has workers (``pool``
    may still be starting: the first conversion waits for its first worker). A bad row is
    recorded with its line number and the others go on. ``on_done`` is called once per row
    as it finishes (the CLI's progress bar), in this thread.
    """
    out_dir.mkdir(parents=True, exist_ok=True)

    def convert(rendered: _Rendered) -> RowResult:
        if rendered.error is not None:
            return RowResult(rendered.line, error=rendered.error)
        try:
            pdf = pool.convert(rendered.docx)
        except KNOWN_ERRORS as exc:
            return RowResult(rendered.line, error=_describe(exc))
        name = f"{safe_filename(rendered.number)}-{rendered.line}"
        path = write_atomic(out_dir / f"{name}.pdf", pdf)
        return RowResult(rendered.line, number=rendered.number, path=path)

    results: list[RowResult] = []
    finished: queue.Queue[Future[RowResult]] = queue.Queue()

    def collect(block: bool = True) -> None:
        """Record finished rows: one, waiting for it (``block``), or all that are done."""
        while True:
            try:
                done = finished.get(block=block)
            except queue.Empty:
                return
            results.append(done.result())
            if on_done:
                on_done(results[-1])
            if block:
                return

    submitted, ahead = 0, RENDER_AHEAD * pool.spec.workers
    # Twice as many threads as workers: while one thread writes a finished PDF to disk,
    # another is already handing its worker the next document.
    with ThreadPoolExecutor(max_workers=2 * pool.spec.workers) as converters:
        for row in rows:
            rendered = _render_row(template, settings, row)
            while submitted - len(results) >= ahead:
                collect()
            converters.submit(convert, rendered).add_done_callback(finished.put)
            submitted += 1
            collect(block=False)
        while len(results) < submitted:
            collect()
    return BulkSummary(sorted(results, key=lambda result: result.line))


@dataclass(frozen=True)
class _Rendered:
    """A rendered row: its number and .docx, or why it failed."""

    line: int
    number: str = ""
    docx: bytes = b""
    error: str | None = None


def _render_row(template: Template, settings: Settings, row: Row) -> _Rendered:
    """Validate, number (as a draft) and render one row."""
    # docxtpl and python-docx are imported once the pool is starting (a tenth of a second
    # more of LibreOffice's start-up done while they load).
    from pipeline.render.docx import render_docx

    if row.error is not None:
        return _Rendered(row.line, error=row.error)
    try:
        form = validate_form(template, row.form)
        number = draft_number(template, form, today_in(settings))
        return _Rendered(row.line, number, render_docx(template, form, number))
    except KNOWN_ERRORS as exc:
        return _Rendered(row.line, error=_describe(exc))
