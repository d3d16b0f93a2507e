"""The ``countersign`` command line: it translates arguments into use-case calls, nothing more.

Exit codes: 0 success, 1 the operation failed, 2 bad usage or bad input (named on stderr, one
line per problem, never a traceback).
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn

import click

from pipeline.audit.bundle import export_bundle, verify_bundle
from pipeline.audit.review import review, review_chart, review_csv
from pipeline.audit.verify import report_html, verify_bytes, verify_document
from pipeline.config import Settings, configure_logging, debug_requested, load_settings
from pipeline.documents.close import close_document
from pipeline.documents.create import create_document
from pipeline.documents.followup import follow_up
from pipeline.documents.repository import (
    blocking_documents,
    document_status,
    download_revision,
    verify_ledger,
)
from pipeline.documents.sign import sign_document
from pipeline.documents.steps import (
    add_progress_entry,
    decline_document,
    mark_action_item_done,
    reassign_step,
    void_document,
)
from pipeline.documents.uploads import read_upload, upload_countersigned
from pipeline.errors import (
    KNOWN_ERRORS,
    BadInput,
    ValidationFailed,
    as_pipeline_error,
)
from pipeline.forms.bulk_input import read_rows
from pipeline.forms.manifest import get_template, list_templates
from pipeline.outbound.webhooks import deliver_webhooks
from pipeline.people.access import create_token
from pipeline.people.parties import DEMO_PASSPHRASE, add_party, list_parties
from pipeline.people.setup import initialise
from pipeline.record.files import write_atomic
from pipeline.render.generation import RowResult, bulk_generate, converter_pool, generate_document
from pipeline.render.template_check import check_path

# Every reporting command takes --json for a stable, machine-readable answer.
json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")


def _fail(message: str, code: int) -> NoReturn:
    click.echo(message, err=True)
    sys.exit(code)


def _emit(payload: Any) -> None:
    click.echo(json.dumps(payload, ensure_ascii=False, indent=2))


def _read_form(path: str) -> Any:
    """Return the JSON form in ``path`` (``-`` for stdin), or raise BadInput naming the flaw."""
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BadInput(f"找不到表单文件 {path}", f"form file {path} not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"无法读取表单文件 {path}：{exc}",
                       f"cannot read form file {path}: {exc}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadInput(f"表单文件 {path} 不是有效的 JSON"
                       f"（第 {exc.lineno} 行第 {exc.colno} 列：{exc.msg}）",
                       f"form file {path} is not valid JSON (line {exc.lineno} column "
                       f"{exc.colno}: {exc.msg})") from None


class CountersignGroup(click.Group):
    """Turns every CountersignError into its message and exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KNOWN_ERRORS as exc:
            error = as_pipeline_error(exc)
            if isinstance(error, ValidationFailed):
                for problem in error.problems:
                    click.echo(str(problem), err=True)
            _fail(str(error), 2 if isinstance(error, BadInput) else 1)
        except KeyboardInterrupt:
            _fail("已中断 / interrupted", 130)
        except (click.exceptions.Exit, click.ClickException, click.Abort, SystemExit):
            raise
        except Exception as exc:  # noqa: BLE001 - a bug must still not print a traceback
            if os.environ.get("COUNTERSIGN_DEBUG"):
                raise
            _fail(f"内部错误 / internal error: {type(exc).__name__}: {exc} "
                  "(set COUNTERSIGN_DEBUG=1 for details)", 1)


@click.group(cls=CountersignGroup)
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Data folder (default: $COUNTERSIGN_DATA or ./data).")
@click.option("--verbose", is_flag=True, help="Also log what the libraries report (pyHanko…).")
@click.version_option(package_name="countersign")
@click.pass_context
def main(ctx: click.Context, data_dir: Path | None, verbose: bool) -> None:
    """Countersign: formal documents from templates, signed by every party in turn."""
    configure_logging(verbose or debug_requested())
    ctx.obj = load_settings(data_dir)


def _passphrase(passphrase_file: Path | None, *, confirm: bool) -> str:
    """Return the key passphrase: from the file, else $COUNTERSIGN_PASSPHRASE, else asked
    for on the terminal (never echoed)."""
    if passphrase_file is not None:
        try:
            return passphrase_file.read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise BadInput(f"无法读取口令文件 {passphrase_file}",
                           f"cannot read passphrase file {passphrase_file}: {exc.strerror}"
                           ) from None
    if os.environ.get("COUNTERSIGN_PASSPHRASE"):
        return os.environ["COUNTERSIGN_PASSPHRASE"]
    if not sys.stdin.isatty():
        raise BadInput("需要密钥口令：请用 --passphrase-file 或 COUNTERSIGN_PASSPHRASE",
                       "a key passphrase is needed: use --passphrase-file or "
                       "COUNTERSIGN_PASSPHRASE")
    return click.prompt("密钥口令 / key passphrase", hide_input=True,
                        confirmation_prompt=confirm)


@main.command()
@json_option
@click.pass_obj
def init(settings: Settings, as_json: bool) -> None:
    """Create the data folder: database, local CA, demo parties (safe to run again)."""
    result = initialise(settings)
    if as_json:
        _emit({"data_dir": str(result.data_dir), "created_ca": result.created_ca,
               "demo_parties": [p.summary() for p in result.demo_parties],
               "demo_passphrase": DEMO_PASSPHRASE if result.demo_parties else None,
               "demo_tokens": result.demo_tokens})
        return
    click.echo(f"data folder ready: {result.data_dir}")
    if result.created_ca:
        click.echo(f"local CA created in {settings.ca_dir}")
    if result.demo_parties:
        click.echo(f"demo parties (key passphrase: {DEMO_PASSPHRASE!r}):")
        for party in result.demo_parties:
            click.echo(f"  {party.id:<10} {party.name} {party.dept} <{party.email}>  "
                       f"web token: {result.demo_tokens[party.id]}")
        click.echo(f"admin web token: {result.demo_tokens['admin']}")
        click.echo("sign in at http://127.0.0.1:8000/login with one of these tokens "
                   "(they are shown only now)")


@main.group()
def parties() -> None:
    """The people who sign: list, add."""


@parties.command("list")
@json_option
@click.pass_obj
def parties_list(settings: Settings, as_json: bool) -> None:
    """List the parties: id, name, department, e-mail, certificate."""
    found = list_parties(settings)
    if as_json:
        _emit([party.summary() for party in found])
        return
    for party in found:
        fingerprint = (party.certificate_sha256 or "")[:16] or "no certificate"
        click.echo(f"{party.id:<12} {party.name}  {party.dept}  <{party.email}>  {fingerprint}")


@parties.command("add")
@click.option("--name", required=True, help="Full name (shown in the signature).")
@click.option("--dept", required=True, help="Department.")
@click.option("--email", required=True, help="E-mail address (reminders go here).")
@click.option("--id", "party_id", help="Party id (default: the e-mail's local part).")
@click.option("--superior", "superior_email", help="Superior's e-mail, for escalations.")
@click.option("--issue-cert", is_flag=True, help="Issue a key and certificate from the local CA.")
@click.option("--p12", "p12_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Import an existing PKCS#12 key and certificate.")
@click.option("--passphrase-file", type=click.Path(dir_okay=False, path_type=Path),
              help="Key passphrase (else $COUNTERSIGN_PASSPHRASE, else asked).")
@json_option
@click.pass_obj
def parties_add(settings: Settings, name: str, dept: str, email: str, party_id: str | None,
                superior_email: str | None, issue_cert: bool, p12_path: Path | None,
                passphrase_file: Path | None, as_json: bool) -> None:
    """Register a party, optionally with a signing key."""
    p12 = None
    if p12_path is not None:
        try:
            p12 = p12_path.read_bytes()
        except OSError as exc:
            raise BadInput(f"无法读取 {p12_path}", f"cannot read {p12_path}: {exc.strerror}"
                           ) from None
    passphrase = (_passphrase(passphrase_file, confirm=issue_cert)
                  if issue_cert or p12 is not None else None)
    party = add_party(settings, name=name, dept=dept, email=email, party_id=party_id,
                      superior_email=superior_email, issue_cert=issue_cert, p12=p12,
                      passphrase=passphrase)
    if as_json:
        _emit(party.summary())
    else:
        click.echo(f"added {party.id}: {party.name} {party.dept} <{party.email}>")


@main.group()
def templates() -> None:
    """The document templates: list, show, check."""


@templates.command("list")
@json_option
def templates_list(as_json: bool) -> None:
    """List the templates: key, title, version."""
    items = [template.summary() for template in list_templates()]
    if as_json:
        _emit(items)
        return
    for item in items:
        click.echo(f"{item['key']:<26} v{item['version']}  {item['title']}  ({item['title_en']})")


@templates.command("show")
@click.argument("key")
@json_option
def templates_show(key: str, as_json: bool) -> None:
    """Show a template's fields, roles, numbering and closure rule."""
    described = get_template(key).describe()
    if as_json:
        _emit(described)
        return
    click.echo(f"{described['title']} ({described['title_en']})  {key} v{described['version']}")
    click.echo("fields:")
    for spec in described["fields"]:
        mark = "*" if spec["required"] else " "
        click.echo(f"  {mark} {spec['name']:<22} {spec['type']:<9} {spec['label_zh']} "
                   f"({spec['label_en']})")
    click.echo("roles (in signing order):")
    for role in described["roles"]:
        deadline = (f"{role['deadline_working_days']} working days"
                    if role["deadline_working_days"] else f"{role['deadline_hours']} h")
        group = " parallel group" if role["parallel_group"] else ""
        consent = ", silence = consent" if role["deemed_consent"] else ""
        click.echo(f"  {role['order']}. {role['key']:<12} {role['label_zh']} "
                   f"({role['label_en']}) deadline {deadline}{group}{consent}")
    click.echo(f"numbering: {described['numbering']['pattern']}")
    required = described["closure"]["required_fields"]
    click.echo(f"closure needs: {', '.join(required) if required else 'every signature'}")


@templates.command("check")
@click.argument("path", type=click.Path(path_type=Path))
@json_option
def templates_check(path: Path, as_json: bool) -> None:
    """Compare a template folder's .docx with its manifest; exit 1 on any mismatch."""
    template, problems = check_path(path)
    if as_json:
        _emit({"key": template.key, "ok": not problems,
               "problems": [{"zh": p.zh, "en": p.en} for p in problems]})
    else:
        for problem in problems:
            click.echo(f"{template.key}: {problem}", err=True)
        if not problems:
            click.echo(f"{template.key}: ok")
    if problems:
        sys.exit(1)


@main.command()
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
    template = get_template(template_key)
    data = _read_form(data_path)
    with converter_pool(settings, size=1, warm=False) as pool:
        document = generate_document(template, data, pool, settings, draft=draft)
    write_atomic(out, document.pdf)
    if docx_out:
        write_atomic(docx_out, document.docx)
    if as_json:
        _emit({"number": document.number, "pdf": str(out), "bytes": len(document.pdf)})
    else:
        click.echo(f"{document.number} → {out}")


@main.command()
@click.argument("template_key", metavar="TEMPLATE")
@click.option("--rows", "rows_path", required=True,
              type=click.Path(dir_okay=False, path_type=Path),
              help="One form per row: .csv or .jsonl.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the PDFs (named by document number).")
@click.option("--draft", is_flag=True, help="Take no numbers from the sequence.")
@json_option
@click.pass_obj
def bulk(settings: Settings, template_key: str, rows_path: Path, out_dir: Path, draft: bool,
         as_json: bool) -> None:
    """Render many documents from CSV or JSONL rows, with a progress bar.

    A bad row is reported with its line number and the others still complete; exit 1 if
    any row failed.
    """
    template = get_template(template_key)
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

    with converter_pool(settings) as pool:
        summary = bulk_generate(template, rows, out_dir, pool, settings, draft=draft,
                                on_done=on_done)
    if progress is not None:
        progress.close()
    if as_json:
        _emit({"succeeded": summary.succeeded, "failed": summary.failed,
               "results": [{"line": r.line, "number": r.number,
                            "path": str(r.path) if r.path else None, "error": r.error}
                           for r in summary.results]})
    else:
        click.echo(f"{summary.succeeded} generated, {summary.failed} failed → {out_dir}")
    if summary.failed:
        sys.exit(1)


def _print_status(report: dict) -> None:
    click.echo(f"{report['id']}  {report['number']}  {report['template']}  {report['status']}")
    for item in report["signed"]:
        how = "deemed consent" if item.get("deemed_consent") else "signed"
        click.echo(f"  ✓ {item['role']:<12} {item['party']:<12} {how} {item['signed_at']}")
    for item in report["next"]:
        click.echo(f"  … {item['role']:<12} {item['party']:<12} due {item['due']}")
    for reason in report["blocking"]:
        click.echo(f"  ! {reason}")


def _binding(value: str) -> tuple[str, str]:
    role, sep, party = value.partition("=")
    if not sep or not role or not party:
        raise BadInput(f"--party 应为 角色=签署方编号，而不是 {value!r}",
                       f"--party must be ROLE=PARTY_ID, not {value!r}")
    return role.strip(), party.strip()


@main.command()
@click.argument("template_key", metavar="TEMPLATE")
@click.option("--data", "data_path", required=True, help="Form data, JSON (- for stdin).")
@click.option("--party", "parties_", multiple=True, metavar="ROLE=PARTY_ID",
              help="Bind a party to a role (once per member of a parallel group).")
@click.option("--creator", default="cli", show_default=True,
              help="Who creates it (a party id gets decline notices and may void).")
@click.option("--request-key", help="Repeat-safe key: the same key returns the same document.")
@click.option("--important", is_flag=True, help="Copy each party's superior on every mail.")
@json_option
@click.pass_obj
def create(settings: Settings, template_key: str, data_path: str, parties_: tuple[str, ...],
           creator: str, request_key: str | None, important: bool, as_json: bool) -> None:
    """Create a document: validate, number, render, prepare; print its id."""
    bindings = [_binding(value) for value in parties_]
    data = _read_form(data_path)
    with converter_pool(settings, size=1, warm=False) as pool:
        report = create_document(settings, template_key, data, bindings, pool, actor=creator,
                                 request_key=request_key, important=important)
    if as_json:
        _emit({"id": report["id"], "number": report["number"], "status": report["status"],
               **report})
    else:
        click.echo(report["id"])


@main.command()
@click.argument("document_id")
@json_option
@click.pass_obj
def status(settings: Settings, document_id: str, as_json: bool) -> None:
    """Who signed, who is next and until when, what blocks closure."""
    _report_out(document_status(settings, document_id), as_json)


@main.command("blocking")
@click.option("--limit", type=click.IntRange(min=1), help="Only the N most urgent.")
@json_option
@click.pass_obj
def blocking_cmd(settings: Settings, limit: int | None, as_json: bool) -> None:
    """Every open document and what blocks it, the most urgent first."""
    reports = blocking_documents(settings, limit)
    if as_json:
        _emit(reports)
        return
    for report in reports:
        _print_status(report)
    if not reports:
        click.echo("no open documents")


@main.command()
@click.argument("document_id")
@click.option("--as", "party_id", required=True, help="The signing party's id.")
@click.option("--passphrase-file", type=click.Path(dir_okay=False, path_type=Path),
              help="Key passphrase (else $COUNTERSIGN_PASSPHRASE, else asked).")
@click.option("--revision", "expected_revision",
              help="The revision (SHA-256) you reviewed; refuse if the document moved on.")
@json_option
@click.pass_obj
def sign(settings: Settings, document_id: str, party_id: str, passphrase_file: Path | None,
         expected_revision: str | None, as_json: bool) -> None:
    """Sign the party's pending field with its own key (server-side)."""
    passphrase = _passphrase(passphrase_file, confirm=False)
    _report_out(sign_document(settings, document_id, party_id, passphrase,
                              expected_revision), as_json)


@main.command()
@click.argument("document_id")
@click.argument("pdf", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--as", "party_id", required=True, help="The uploading party's id.")
@json_option
@click.pass_obj
def upload(settings: Settings, document_id: str, pdf: Path, party_id: str,
           as_json: bool) -> None:
    """Accept a PDF the party countersigned in its own tool (checked before it counts)."""
    _report_out(upload_countersigned(settings, document_id, party_id, read_upload(pdf)),
                as_json)


@main.command()
@click.argument("document_id")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--revision", type=int, help="1 = as rendered; default: the latest.")
@click.pass_obj
def download(settings: Settings, document_id: str, out: Path, revision: int | None) -> None:
    """Write a revision of the document's PDF."""
    write_atomic(out, download_revision(settings, document_id, revision))
    click.echo(str(out))


@main.command()
@click.argument("document_id")
@json_option
@click.pass_obj
def close(settings: Settings, document_id: str, as_json: bool) -> None:
    """Check closure rules, add long-term validation, archive."""
    with converter_pool(settings, size=1, warm=False) as pool:
        report = close_document(settings, document_id, pool)
    _report_out(report, as_json)


def _report_out(report: dict, as_json: bool) -> None:
    _emit(report) if as_json else _print_status(report)


@main.command()
@click.argument("document_id")
@click.option("--as", "party_id", required=True, help="The declining party's id.")
@click.option("--reason", required=True, help="Why (shown to the creator and signers).")
@json_option
@click.pass_obj
def decline(settings: Settings, document_id: str, party_id: str, reason: str,
            as_json: bool) -> None:
    """Decline to sign, with a reason; blocks closure."""
    _report_out(decline_document(settings, document_id, party_id, reason), as_json)


@main.command()
@click.argument("document_id")
@click.option("--as", "actor", required=True, help="The creator's id.")
@click.option("--reason", required=True, help="Why the document is void.")
@json_option
@click.pass_obj
def void(settings: Settings, document_id: str, actor: str, reason: str, as_json: bool) -> None:
    """Void a document (its creator only)."""
    _report_out(void_document(settings, document_id, actor, reason), as_json)


@main.command()
@click.argument("document_id")
@click.option("--field", required=True, help="The unsigned field (e.g. receiver, supporter-2).")
@click.option("--to", "to_party", required=True, help="A party of the same department.")
@click.option("--as", "actor", required=True, help="Who reassigns.")
@click.option("--reason", required=True, help="Why.")
@json_option
@click.pass_obj
def reassign(settings: Settings, document_id: str, field: str, to_party: str, actor: str,
             reason: str, as_json: bool) -> None:
    """Give an unsigned step to another party of the same department."""
    _report_out(reassign_step(settings, document_id, field, to_party, actor, reason), as_json)


@main.command()
@click.argument("document_id")
@click.option("--date", "entry_date", required=True, help="ISO date of the entry.")
@click.option("--text", required=True, help="What happened.")
@click.option("--as", "actor", required=True, help="Who reports it.")
@json_option
@click.pass_obj
def progress(settings: Settings, document_id: str, entry_date: str, text: str, actor: str,
             as_json: bool) -> None:
    """Add a dated progress entry to an issue document."""
    with converter_pool(settings, size=1, warm=False) as pool:
        report = add_progress_entry(settings, document_id, entry_date, text, actor, pool)
    _report_out(report, as_json)


@main.command("action-done")
@click.argument("document_id")
@click.option("--item", required=True, type=int, help="Action item number (1-based).")
@click.option("--as", "actor", required=True, help="Who reports it done.")
@json_option
@click.pass_obj
def action_done(settings: Settings, document_id: str, item: int, actor: str,
                as_json: bool) -> None:
    """Mark a meeting-minutes action item done."""
    _report_out(mark_action_item_done(settings, document_id, item, actor), as_json)


@main.command("follow-up")
@click.option("--now", "now_text", help="Pretend it is this ISO date-time (for drills).")
@json_option
@click.pass_obj
def follow_up_cmd(settings: Settings, now_text: str | None, as_json: bool) -> None:
    """One pass of reminders, escalations and deemed consent."""
    now = None
    if now_text:
        try:
            now = datetime.fromisoformat(now_text)
        except ValueError:
            raise BadInput(f"--now 应为 ISO 日期时间：{now_text!r}",
                           f"--now must be an ISO date-time: {now_text!r}") from None
        if now.tzinfo is None:
            now = now.replace(tzinfo=settings.zone)
    actions = follow_up(settings, now)
    if as_json:
        _emit([asdict(action) for action in actions])
        return
    for action in actions:
        click.echo(f"{action.document}  {action.kind:<15} {action.party:<12} {action.field}"
                   f"  {', '.join(action.to)} {action.detail}")
    click.echo(f"{len(actions)} action(s)")


VERDICT_WORDS = {"TOTAL_PASSED": "VALID 有效 (TOTAL_PASSED)",
                 "INDETERMINATE": "INDETERMINATE 无法确定",
                 "TOTAL_FAILED": "INVALID 无效 (TOTAL_FAILED)"}
VERDICT_MARKS = {"TOTAL_PASSED": "✓", "INDETERMINATE": "?", "TOTAL_FAILED": "✗"}


@main.command()
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
    if document_id:
        result = verify_document(settings, document_id)
        subject = f"{result['number']} ({document_id})"
    else:
        result = verify_bytes(settings, read_upload(pdf))
        subject = str(pdf)
    if html_out:
        write_atomic(html_out, report_html(result, subject).encode("utf-8"))
    if as_json:
        _emit(result)
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


@main.command("export")
@click.argument("document_id")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The bundle to write (.zip).")
@json_option
@click.pass_obj
def export_cmd(settings: Settings, document_id: str, out: Path, as_json: bool) -> None:
    """Write a self-contained audit bundle of a closed document."""
    manifest = export_bundle(settings, document_id, out)
    _emit(manifest) if as_json else click.echo(f"{manifest['number']} → {out}")


@main.command("verify-bundle")
@click.argument("bundle", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--trust", "trust_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Trust these roots instead of the ones in the bundle.")
@json_option
def verify_bundle_cmd(bundle: Path, trust_file: Path | None, as_json: bool) -> None:
    """Verify an audit bundle offline, without a data folder (exit 1 if anything fails)."""
    roots = trust_file.read_bytes() if trust_file else None
    result = verify_bundle(bundle, roots)
    if as_json:
        _emit(result)
    else:
        click.echo(f"{bundle}: {'VALID 有效' if result['valid'] else 'INVALID 无效'}")
        for problem in result["problems"]:
            click.echo(f"  ! {problem}")
    if not result["valid"]:
        sys.exit(1)


@main.command("report")
@click.option("--since", required=True, help="First creation date (ISO), inclusive.")
@click.option("--until", required=True, help="Last creation date (ISO), inclusive.")
@click.option("--csv", "csv_out", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the rows as CSV.")
@click.option("--chart", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write a PNG chart of turnaround per department.")
@json_option
@click.pass_obj
def report_cmd(settings: Settings, since: str, until: str, csv_out: Path | None,
               chart: Path | None, as_json: bool) -> None:
    """Review: turnaround, overdue, deemed consent, declines, longest waits."""
    result = review(settings, since, until)
    if csv_out:
        write_atomic(csv_out, review_csv(result).encode("utf-8"))
    if chart:
        write_atomic(chart, review_chart(result))
    if as_json:
        _emit(result)
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


@main.command("webhooks")
@json_option
@click.pass_obj
def webhooks_cmd(settings: Settings, as_json: bool) -> None:
    """Deliver pending ledger events to the configured webhook URLs (one pass)."""
    results = deliver_webhooks(settings)
    if as_json:
        _emit([asdict(result) for result in results])
        return
    for result in results:
        click.echo(f"{result.url}  #{result.seq}  {'delivered' if result.delivered else 'failed'}"
                   f" ({result.status})")
    click.echo(f"{len(results)} attempt(s)")


@main.group()
def tokens() -> None:
    """API tokens (shown once, stored hashed)."""


@tokens.command("create")
@click.option("--role", "role_name", required=True,
              type=click.Choice(["admin", "party", "auditor"]), help="What the token may do.")
@click.option("--party", "party_id", help="The party a party token acts as.")
@click.option("--label", default="", help="A name to recognise the token by.")
@click.pass_obj
def tokens_create(settings: Settings, role_name: str, party_id: str | None, label: str) -> None:
    """Create an API token and print it (it cannot be shown again)."""
    click.echo(create_token(settings, role_name, party_id, label))


@main.group("ledger")
def ledger_group() -> None:
    """The hash-chained ledger."""


@ledger_group.command("verify")
@json_option
@click.pass_obj
def ledger_verify(settings: Settings, as_json: bool) -> None:
    """Walk the chain and re-hash every stored revision; exit 1 on any problem."""
    report = verify_ledger(settings)
    if as_json:
        _emit({"ok": report.ok, "events": report.events, "revisions": report.revisions,
               "problems": report.problems})
    else:
        for problem in report.problems:
            click.echo(problem, err=True)
        click.echo(f"{report.events} events, {report.revisions} revisions: "
                   f"{'ok' if report.ok else f'{len(report.problems)} problem(s)'}")
    if not report.ok:
        sys.exit(1)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.pass_obj
def serve(settings: Settings, host: str, port: int) -> None:
    """Run the API and web pages."""
    import uvicorn

    from api.app import create_app

    os.environ["COUNTERSIGN_DATA"] = str(settings.data_dir)
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info")


if __name__ == "__main__":
    main()
