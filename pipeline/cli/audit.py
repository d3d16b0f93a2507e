"""Audit commands: ``verify`` a PDF or a ledger document, ``export`` and ``verify-bundle``,
the ``report`` (quarterly review), ``ledger verify`` and ``ledger anchor``."""

from __future__ import annotations

import gc
import sys
from pathlib import Path

import click

from pipeline.cli.common import emit, json_option
from pipeline.config import Settings
from pipeline.errors import BadInput

VERDICT_WORDS = {"TOTAL_PASSED": "VALID 有效 (TOTAL_PASSED)",
                 "INDETERMINATE": "INDETERMINATE 无法确定",
                 "TOTAL_FAILED": "INVALID 无效 (TOTAL_FAILED)"}
VERDICT_MARKS = {"TOTAL_PASSED": "✓", "INDETERMINATE": "?", "TOTAL_FAILED": "✗"}


@click.command()
@click.argument("pdf", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--document", "document_id", help="Verify a ledger document instead of a file.")
@click.option("--html", "html_out", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write a printable HTML report (Chinese and English).")
@json_option
@click.pass_obj
def verify(settings: Settings, pdf: Path | None, document_id: str | None,
           html_out: Path | None, as_json: bool) -> None:
    """Audit every signature of a PDF (exit 1 if anything fails)."""
    if (pdf is None) == (document_id is None):
        raise BadInput("请给出一个 PDF 文件或 --document", "give a PDF file or --document, "
                       "not both")
    # One verification, then the process ends: the cycle collector would only walk the
    # ASN.1 and PDF objects it builds again and again, all alive until the end anyway
    # (a tenth of the command's time).
    gc.disable()
    from pipeline.audit.verify import report_html, verify_bytes, verify_document
    from pipeline.record.files import read_upload, write_atomic

    if document_id:
        result = verify_document(settings, document_id, actor="cli")
        subject = f"{result['number']} ({document_id})"
    else:
        result = verify_bytes(settings, read_upload(pdf, settings.max_upload_bytes))
        subject = str(pdf)
    if html_out:
        write_atomic(html_out, report_html(result, subject).encode("utf-8"))
    if as_json:
        emit(result)
    else:
        click.echo(f"{subject}: {VERDICT_WORDS[result['indication']]}")
        for item in [*result["signatures"], *result.get("document_timestamps", [])]:
            click.echo(f"  {VERDICT_MARKS[item['indication']]} {item['field']:<18} "
                       f"{item['signer']:<24} {item['timestamp'] or '-':<34} "
                       f"{item['subindication'] or item['indication']}")
            for problem in item["problems"]:
                click.echo(f"      {problem}")
            for warning in item.get("warnings", []):
                click.echo(f"      ~ {warning}")
        for problem in result["problems"]:
            click.echo(f"  ! {problem}")
    if not result["valid"]:
        sys.exit(1)


@click.command("export")
@click.argument("document_ids", metavar="[DOC_ID]...", nargs=-1)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the audit bundle (.zip) of one closed document.")
@click.option("--sqlite", "sqlite_out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the audit database (SQLite, for Datasette) of the documents named "
                   "or created between --since and --until.")
@click.option("--since", help="With --sqlite: first creation date (ISO), inclusive.")
@click.option("--until", help="With --sqlite: last creation date (ISO), inclusive.")
@json_option
@click.pass_obj
def export(settings: Settings, document_ids: tuple[str, ...], out: Path | None,
           sqlite_out: Path | None, since: str | None, until: str | None,
           as_json: bool) -> None:
    """Write a self-contained audit bundle of a closed document, or an audit database."""
    if (out is None) == (sqlite_out is None):
        raise BadInput("请给出 --out 或 --sqlite 之一", "give --out BUNDLE or --sqlite OUT.db")
    if out is not None:
        if len(document_ids) != 1 or since or until:
            raise BadInput("--out 只导出一个文档的审计包",
                           "--out writes the bundle of exactly one document (no --since/--until)")
        from pipeline.audit.bundle import export_bundle

        manifest = export_bundle(settings, document_ids[0], out)
        emit(manifest) if as_json else click.echo(f"{manifest['number']} → {out}")
        return
    from pipeline.audit.sqlite_export import export_sqlite

    summary = export_sqlite(settings, sqlite_out, document_ids, since, until)
    tables = summary["tables"]
    emit(summary) if as_json else click.echo(
        f"{tables['documents']} documents, {tables['events']} events → {sqlite_out}")


@click.command("verify-bundle")
@click.argument("bundle", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--trust", "trust_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Trust these roots instead of the ones in the bundle.")
@json_option
def verify_bundle(bundle: Path, trust_file: Path | None, as_json: bool) -> None:
    """Verify an audit bundle offline, without a data folder (exit 1 if anything fails)."""
    from pipeline.audit.bundle import verify_bundle as verify_offline

    roots = trust_file.read_bytes() if trust_file else None
    result = verify_offline(bundle, roots)
    if as_json:
        emit(result)
    else:
        click.echo(f"{bundle}: {'VALID 有效' if result['valid'] else 'INVALID 无效'}")
        for problem in result["problems"]:
            click.echo(f"  ! {problem}")
    if not result["valid"]:
        sys.exit(1)


@click.command("report")
@click.option("--since", required=True, help="First creation date (ISO), inclusive.")
@click.option("--until", required=True, help="Last creation date (ISO), inclusive.")
@click.option("--csv", "csv_out", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the rows as CSV.")
@click.option("--chart", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write a PNG chart of turnaround per department.")
@json_option
@click.pass_obj
def report(settings: Settings, since: str, until: str, csv_out: Path | None,
           chart: Path | None, as_json: bool) -> None:
    """Review: turnaround, overdue, deemed consent, declines, longest waits."""
    from pipeline.audit.review import review, review_chart, review_csv
    from pipeline.record.files import write_atomic

    result = review(settings, since, until)
    if csv_out:
        write_atomic(csv_out, review_csv(result).encode("utf-8"))
    if chart:
        write_atomic(chart, review_chart(result))
    if as_json:
        emit(result)
        return
    click.echo(f"{result['documents']} documents created {since} – {until}")
    click.echo(f"{'scope':<11} {'key':<26} {'steps':>5} {'median h':>9} {'p90 h':>8} "
               f"{'overdue':>7} {'deemed':>6} {'declined':>8} {'rejected':>8}")
    for row in result["rows"]:
        median = "-" if row["median_hours"] is None else f"{row['median_hours']:.1f}"
        p90 = "-" if row["p90_hours"] is None else f"{row['p90_hours']:.1f}"
        click.echo(f"{row['scope']:<11} {row['key']:<26} {row['steps']:>5} {median:>9} "
                   f"{p90:>8} {row['overdue']:>7} {row['deemed_consent']:>6} "
                   f"{row['declines']:>8} {row['rejected_uploads']:>8}")
    click.echo("longest waits:")
    for wait in result["longest_waits"]:
        click.echo(f"  {wait['number']:<18} {wait['role']:<12} {wait['party']:<12} "
                   f"{wait['hours']:>8.1f} h  {wait['outcome']}")


@click.group("ledger")
def ledger() -> None:
    """The hash-chained ledger."""


@ledger.command("verify")
@json_option
@click.pass_obj
def ledger_verify(settings: Settings, as_json: bool) -> None:
    """Walk the chain, re-hash every stored revision and check every anchor; exit 1 on any
    problem."""
    from pipeline.documents.repository import verify_ledger

    result = verify_ledger(settings)
    if as_json:
        emit({"ok": result.ok, "events": result.events, "revisions": result.revisions,
              "anchors": result.anchors, "anchored_through": result.anchored_through,
              "unanchored": result.unanchored, "problems": result.problems})
    else:
        for problem in result.problems:
            click.echo(problem, err=True)
        click.echo(f"{result.events} events, {result.revisions} revisions, {result.anchors} "
                   f"anchors (through event {result.anchored_through}, {result.unanchored} "
                   f"after it): {'ok' if result.ok else f'{len(result.problems)} problem(s)'}")
    if not result.ok:
        sys.exit(1)


@ledger.command("anchor")
@json_option
@click.pass_obj
def ledger_anchor(settings: Settings, as_json: bool) -> None:
    """Timestamp the chain head now (RFC 3161) and keep the token in the database and store."""
    from pipeline.record.anchors import anchor_head

    anchor = anchor_head(settings)
    if as_json:
        emit(anchor.as_dict() if anchor else None)
    elif anchor is None:
        click.echo("the ledger is empty: nothing to anchor")
    else:
        click.echo(f"event {anchor.seq} {anchor.head_hash} "
                   f"{'anchored' if anchor.new else 'already anchored'} at "
                   f"{anchor.timestamped_at}")


COMMANDS = (verify, export, verify_bundle, report, ledger)
