"""What the commands share: ``--json``, printing, reading a form, asking for a passphrase.

Nothing heavy is imported here: ``countersign --help`` and every command load only what
they use.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from pipeline.config import passphrase_from_environment
from pipeline.errors import BadInput

if TYPE_CHECKING:
    from pipeline.documents.status import DocumentStatus

# Every reporting command takes --json for a stable, machine-readable answer.
json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
# The operator of the data folder acting as the administrator, as the ledger records it.
CLI_ADMIN = "admin:cli"


def acting_options(who: str):
    """``--as PARTY_ID`` or ``--admin``: who acts (``who`` says which party may)."""
    def decorate(command):
        command = click.option("--admin", "as_admin", is_flag=True,
                               help="Act as the administrator (the data folder's operator).")(
            command)
        return click.option("--as", "party_id", metavar="PARTY_ID", help=who)(command)
    return decorate


def acting(settings, party_id: str | None, as_admin: bool) -> tuple[str, bool]:
    """Return (actor, is admin) from ``--as``/``--admin``; exactly one must be given, and
    ``--as`` must name a registered party."""
    if as_admin == bool(party_id):
        raise BadInput("请给出 --as 签署方编号 或 --admin（二选一）",
                       "give either --as PARTY_ID or --admin")
    if as_admin:
        return CLI_ADMIN, True
    from pipeline.people.parties import get_party

    return get_party(settings, party_id).id, False


def fail(message: str, code: int) -> NoReturn:
    """Print ``message`` on stderr and exit with ``code``."""
    click.echo(message, err=True)
    sys.exit(code)


def emit(payload: Any) -> None:
    """Print ``payload`` as the command's JSON answer."""
    click.echo(json.dumps(payload, ensure_ascii=False, indent=2))


def read_form(path: str) -> Any:
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


def passphrase(passphrase_file: Path | None, *, confirm: bool) -> str:
    """Return the key passphrase: from the file, else $COUNTERSIGN_PASSPHRASE, else asked
    for on the terminal (never echoed)."""
    if passphrase_file is not None:
        try:
            return passphrase_file.read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise BadInput(f"无法读取口令文件 {passphrase_file}",
                           f"cannot read passphrase file {passphrase_file}: {exc.strerror}"
                           ) from None
    from_environment = passphrase_from_environment()
    if from_environment:
        return from_environment
    if not sys.stdin.isatty():
        raise BadInput("需要密钥口令：请用 --passphrase-file 或 COUNTERSIGN_PASSPHRASE",
                       "a key passphrase is needed: use --passphrase-file or "
                       "COUNTERSIGN_PASSPHRASE")
    return click.prompt("密钥口令 / key passphrase", hide_input=True,
                        confirmation_prompt=confirm)


def print_status(report: DocumentStatus) -> None:
    """Print a document's status: who signed, who is next and until when, what blocks."""
    click.echo(f"{report.id}  {report.number}  {report.template}  {report.status}")
    for item in report.signed:
        how = "deemed consent" if item.deemed_consent else "signed"
        click.echo(f"  ✓ {item.role:<12} {item.party:<12} {how} {item.signed_at}")
    for waiting in report.next:
        click.echo(f"  … {waiting.role:<12} {waiting.party:<12} due {waiting.due}")
    for reason in report.blocking:
        click.echo(f"  ! {reason}")
    if report.supersedes:
        click.echo(f"  supersedes {report.supersedes}")
    if report.superseded_by:
        click.echo(f"  superseded by {report.superseded_by}")
    if report.legal_hold:
        click.echo("  ⚖ 法律保全 / legal hold: kept past its retention date until lifted")


def status_out(report: DocumentStatus, as_json: bool) -> None:
    """Print a document's status, as JSON with ``--json``."""
    if as_json:
        emit(report.as_json())
    else:
        print_status(report)
