"""Commands that render without the ledger: ``generate`` one document, ``bulk`` many."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from pipeline.cli.common import emit, json_option, read_form
from pipeline.config import Settings


@click.command()
@click.argument("template_key", metavar="TEMPLATE")
@click.option("--data", "data_path", required=True, help="Form data, JSON (- for stdin).")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the PDF.")
@click.option("--docx", "docx_out", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the rendered .docx here.")
@click.option("--draft", is_flag=True, help="Take no number from the sequence.")
@json_option
@click.pass_obj
def generate(settings: Settings, template_key: str, data_path: str, out: Path,
             docx_out: Path | None, draft: bool, as_json: bool) -> None:
    """Render one document to PDF/A (no ledger)."""
    from pipeline.forms.manifest import get_template
    from pipeline.record.files import write_atomic
    from pipeline.render.generation import converter_pool, generate_document

    template = get_template(template_key)
    data = read_form(data_path)
    with converter_pool(settings, size=1, warm=False) as pool:
        document = generate_document(template, data, pool, settings, draft=draft)
    write_atomic(out, document.pdf)
    if docx_out:
        write_atomic(docx_out, document.docx)
    if as_json:
        emit({"number": document.number, "pdf": str(out), "bytes": len(document.pdf)})
    else:
        click.echo(f"{document.number} → {out}")


@click.command()
@click.argument("template_key", metavar="TEMPLATE")
@click.option("--rows", "rows_path", required=True,
              type=click.Path(dir_okay=False, path_type=Path),
              help="One form per row: .csv or .jsonl.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the PDFs (named <draft number>-<line>.pdf).")
@json_option
@click.pass_obj
def bulk(settings: Settings, template_key: str, rows_path: Path, out_dir: Path,
         as_json: bool) -> None:
    """Render many draft documents from CSV or JSONL rows, with a progress bar.

    Bulk output is never tracked, so it takes no official number: each PDF is a draft
    (…-草稿). A bad row is reported with its line number and the others still complete;
    exit 1 if any row failed.
    """
    from pipeline.forms.manifest import get_template
    from pipeline.render.generation import RowResult, bulk_generate, converter_pool

    template = get_template(template_key)
    # LibreOffice starts while the rows are read and the first ones rendered; each worker
    # warms up on its first document.
    pool = converter_pool(settings, warm=False).start_in_background()
    from pipeline.forms.bulk_input import read_rows

    try:
        rows = list(read_rows(rows_path, template))
        show_progress = sys.stderr.isatty() and not as_json
        progress = None
        if show_progress:
            from tqdm import tqdm

            # A terminal that reports no size (a bare pty) would get no bar at all.
            size = os.get_terminal_size(sys.stderr.fileno())
            progress = tqdm(total=len(rows), unit="doc", file=sys.stderr,
                            ncols=size.columns or 80, nrows=size.lines or 24)

        def on_done(result: RowResult) -> None:
            if progress is not None:
                progress.update(1)
            if result.error is not None and not as_json:
                (progress.write if progress else lambda m: click.echo(m, err=True))(
                    f"line {result.line}: {result.error}")

        summary = bulk_generate(template, rows, out_dir, pool, settings,
                                on_done=on_done)
    finally:
        pool.close()
    if progress is not None:
        progress.close()
    if as_json:
        emit({"succeeded": summary.succeeded, "failed": summary.failed,
              "results": [{"line": r.line, "number": r.number,
                           "path": str(r.path) if r.path else None, "error": r.error}
                          for r in summary.results]})
    else:
        click.echo(f"{summary.succeeded} generated, {summary.failed} failed → {out_dir}")
    if summary.failed:
        sys.exit(1)


COMMANDS = (generate, bulk)
