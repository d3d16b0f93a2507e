"""Use cases that turn form data into PDFs without the ledger: ``generate`` and ``bulk``.

validate → number → render .docx → convert to PDF/A. The CLI and the API call these and
nothing else; they decide nothing of their own.

``bulk`` output is never tracked (no parties, no signatures, no ledger), so it never takes
an official number: every row is a draft numbered ``…-草稿``. Official numbers belong to the
documents the ledger follows (``create``).
"""

from __future__ import annotations

import multiprocessing
import re
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor, as_completed
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
from pipeline.render.docx import render_docx
from pipeline.render.libreoffice import ConverterPool, PoolSpec
from pipeline.render.lifetime import end_with_parent

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

    Rows are validated, given their draft numbers and rendered in a process of their own,
    ahead of the conversions: rendering is CPU-bound Python, and in this process it would
    hold the GIL while the threads feeding LibreOffice wait to hand over the next document.
    Conversions run as many at a time as the pool has workers (``pool`` may still be
    starting: the first conversion waits for its first worker). A bad row is recorded with
    its line number and the others go on. ``on_done`` is called once per row as it
    finishes (the CLI's progress bar).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    renderer = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_start_renderer,
                                   initargs=(settings, template.key))

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
    # Twice as many threads as workers: while one thread writes a finished PDF to disk,
    # another is already handing its worker the next document.
    with renderer, ThreadPoolExecutor(max_workers=2 * pool.spec.workers) as converters:
        futures = [converters.submit(convert, rendered)
                   for rendered in renderer.map(_render_row, rows)]
        for future in as_completed(futures):
            result = future.result()
            results.append(result)
            if on_done:
                on_done(result)
    return BulkSummary(sorted(results, key=lambda result: result.line))


@dataclass(frozen=True)
class _Rendered:
    """A row rendered by the render process: its number and .docx, or why it failed."""

    line: int
    number: str = ""
    docx: bytes = b""
    error: str | None = None


_renderer: dict[str, Any] = {}


def _start_renderer(settings: Settings, template_key: str) -> None:
    """Set up the render process: the settings and the template."""
    end_with_parent()
    _renderer.update(settings=settings, template=get_template(template_key))


def _render_row(row: Row) -> _Rendered:
    """Validate, number (as a draft) and render one row (in the render process)."""
    if row.error is not None:
        return _Rendered(row.line, error=row.error)
    template, settings = _renderer["template"], _renderer["settings"]
    try:
        form = validate_form(template, row.form)
        number = draft_number(template, form, today_in(settings))
        return _Rendered(row.line, number, render_docx(template, form, number))
    except KNOWN_ERRORS as exc:
        return _Rendered(row.line, error=_describe(exc))
