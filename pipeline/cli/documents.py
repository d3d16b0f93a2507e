"""Commands of a document's life: ``create``, ``status``, ``blocking``, ``sign``, ``upload``,
``download``, ``close``, ``decline``, ``revise``, ``void``, ``reassign``, ``resolve``,
``progress``, ``action-done``, ``hold``.

Each calls one use case of ``pipeline.documents`` and prints the status it returns.
"""

from __future__ import annotations

from pathlib import Path

import click

from pipeline.cli.common import (
    acting,
    acting_options,
    emit,
    json_option,
    passphrase,
    print_status,
    read_form,
    status_out,
)
from pipeline.config import Settings
from pipeline.errors import BadInput


def _binding(value: str) -> tuple[str, str]:
    role, sep, party = value.partition("=")
    if not sep or not role or not party:
        raise BadInput(f"--party 应为 角色=签署方编号，而不是 {value!r}",
                       f"--party must be ROLE=PARTY_ID, not {value!r}")
    return role.strip(), party.strip()


@click.command()
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
    from pipeline.documents.create import create_document
    from pipeline.render.generation import converter_pool

    bindings = [_binding(value) for value in parties_]
    if creator != "cli":
        from pipeline.people.parties import get_party

        get_party(settings, creator)  # a made-up creator could never be told or void
    data = read_form(data_path)
    with converter_pool(settings, size=1, warm=False) as pool:
        report = create_document(settings, template_key, data, bindings, pool, actor=creator,
                                 request_key=request_key, important=important)
    if as_json:
        answer = report.as_json()
        # The contract's three keys of ``create`` first, then the whole status.
        emit({"id": answer["id"], "number": answer["number"], "status": answer["status"],
              **answer})
    else:
        click.echo(report.id)


@click.command()
@click.argument("document_id")
@json_option
@click.pass_obj
def status(settings: Settings, document_id: str, as_json: bool) -> None:
    """Who signed, who is next and until when, what blocks closure."""
    from pipeline.documents.repository import document_status

    status_out(document_status(settings, document_id), as_json)


@click.command("blocking")
@click.option("--limit", type=click.IntRange(min=1), help="Only the N most urgent.")
@json_option
@click.pass_obj
def blocking(settings: Settings, limit: int | None, as_json: bool) -> None:
    """Every open document and what blocks it, the most urgent first."""
    from pipeline.documents.repository import blocking_documents

    reports = blocking_documents(settings, limit)
    if as_json:
        emit([report.as_json() for report in reports])
        return
    for report in reports:
        print_status(report)
    if not reports:
        click.echo("no open documents")


@click.command()
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
    from pipeline.documents.sign import sign_document

    key_passphrase = passphrase(passphrase_file, confirm=False)
    status_out(sign_document(settings, document_id, party_id, key_passphrase,
                             expected_revision), as_json)


@click.command()
@click.argument("document_id")
@click.argument("pdf", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--as", "party_id", required=True, help="The uploading party's id.")
@json_option
@click.pass_obj
def upload(settings: Settings, document_id: str, pdf: Path, party_id: str,
           as_json: bool) -> None:
    """Accept a PDF the party countersigned in its own tool (checked before it counts)."""
    from pipeline.documents.uploads import read_upload, upload_countersigned

    data = read_upload(pdf, settings.max_upload_bytes)
    status_out(upload_countersigned(settings, document_id, party_id, data), as_json)


@click.command()
@click.argument("document_id")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--revision", type=int, help="1 = as rendered; default: the latest.")
@click.pass_obj
def download(settings: Settings, document_id: str, out: Path, revision: int | None) -> None:
    """Write a revision of the document's PDF."""
    from pipeline.documents.repository import download_revision
    from pipeline.record.files import write_atomic

    write_atomic(out, download_revision(settings, document_id, revision))
    click.echo(str(out))


@click.command()
@click.argument("document_id")
@json_option
@click.pass_obj
def close(settings: Settings, document_id: str, as_json: bool) -> None:
    """Check closure rules, add long-term validation, archive."""
    from pipeline.documents.close import close_document
    from pipeline.render.generation import converter_pool

    with converter_pool(settings, size=1, warm=False) as pool:
        report = close_document(settings, document_id, pool)
    status_out(report, as_json)


@click.command()
@click.argument("document_id")
@click.option("--as", "party_id", required=True, help="The declining party's id.")
@click.option("--reason", required=True, help="Why (shown to the creator and signers).")
@json_option
@click.pass_obj
def decline(settings: Settings, document_id: str, party_id: str, reason: str,
            as_json: bool) -> None:
    """Decline to sign, with a reason; blocks closure."""
    from pipeline.documents.steps import decline_document

    status_out(decline_document(settings, document_id, party_id, reason), as_json)


@click.command()
@click.argument("document_id")
@click.option("--data", "data_path", required=True, help="The changed form, JSON (- for stdin).")
@click.option("--party", "parties_", multiple=True, metavar="ROLE=PARTY_ID",
              help="Bind the parties again (default: those of the declined document).")
@acting_options("The declined document's creator.")
@json_option
@click.pass_obj
def revise(settings: Settings, document_id: str, data_path: str, parties_: tuple[str, ...],
           party_id: str | None, as_admin: bool, as_json: bool) -> None:
    """Make the next version of a declined document (same number, 第N版); print its id."""
    from pipeline.documents.revise import revise_document
    from pipeline.render.generation import converter_pool

    actor, admin = acting(settings, party_id, as_admin)
    data = read_form(data_path)
    bindings = [_binding(value) for value in parties_] or None
    with converter_pool(settings, size=1, warm=False) as pool:
        report = revise_document(settings, document_id, data, actor, pool, bindings,
                                 admin=admin)
    if as_json:
        emit(report.as_json())
    else:
        click.echo(report.id)


@click.command()
@click.argument("document_id")
@acting_options("The document's creator.")
@click.option("--reason", required=True, help="Why the document is void.")
@json_option
@click.pass_obj
def void(settings: Settings, document_id: str, party_id: str | None, as_admin: bool,
         reason: str, as_json: bool) -> None:
    """Void a document before closure, with a reason: its creator or an administrator."""
    from pipeline.documents.steps import void_document

    actor, admin = acting(settings, party_id, as_admin)
    status_out(void_document(settings, document_id, actor, reason, admin=admin), as_json)


@click.command()
@click.argument("document_id")
@click.option("--field", required=True, help="The unsigned field (e.g. receiver, supporter-2).")
@click.option("--to", "to_party", required=True, help="A party of the same department.")
@acting_options("The creator, or the party whose step it is.")
@click.option("--reason", required=True, help="Why.")
@json_option
@click.pass_obj
def reassign(settings: Settings, document_id: str, field: str, to_party: str,
             party_id: str | None, as_admin: bool, reason: str, as_json: bool) -> None:
    """Give an unsigned step to another party of the same department."""
    from pipeline.documents.steps import reassign_step

    actor, admin = acting(settings, party_id, as_admin)
    status_out(reassign_step(settings, document_id, field, to_party, actor, reason,
                             admin=admin), as_json)


@click.command()
@click.argument("document_id")
@click.option("--text", required=True, help="The result (结果确认), as the document shows it.")
@acting_options("The responsible department's party (it signs next).")
@json_option
@click.pass_obj
def resolve(settings: Settings, document_id: str, text: str, party_id: str | None,
            as_admin: bool, as_json: bool) -> None:
    """Record an issue's result (结果确认) before the responsible department signs."""
    from pipeline.documents.resolve import resolve_document
    from pipeline.render.generation import converter_pool

    actor, admin = acting(settings, party_id, as_admin)
    with converter_pool(settings, size=1, warm=False) as pool:
        report = resolve_document(settings, document_id, text, actor, pool, admin=admin)
    status_out(report, as_json)


@click.command()
@click.argument("document_id")
@click.option("--date", "entry_date", required=True, help="ISO date of the entry.")
@click.option("--text", required=True, help="What happened.")
@acting_options("A party of the document who reports it.")
@json_option
@click.pass_obj
def progress(settings: Settings, document_id: str, entry_date: str, text: str,
             party_id: str | None, as_admin: bool, as_json: bool) -> None:
    """Add a dated progress entry to an issue (a party of it, or an administrator)."""
    from pipeline.documents.steps import add_progress_entry
    from pipeline.render.generation import converter_pool

    actor, admin = acting(settings, party_id, as_admin)
    with converter_pool(settings, size=1, warm=False) as pool:
        report = add_progress_entry(settings, document_id, entry_date, text, actor, pool,
                                    admin=admin)
    status_out(report, as_json)


@click.command("action-done")
@click.argument("document_id")
@click.option("--item", required=True, type=int, help="Action item number (1-based).")
@acting_options("A party of the document who reports it done.")
@json_option
@click.pass_obj
def action_done(settings: Settings, document_id: str, item: int, party_id: str | None,
                as_admin: bool, as_json: bool) -> None:
    """Mark a meeting-minutes action item done (a party of it, or an administrator)."""
    from pipeline.documents.steps import mark_action_item_done

    actor, admin = acting(settings, party_id, as_admin)
    status_out(mark_action_item_done(settings, document_id, item, actor, admin=admin),
               as_json)


@click.command()
@click.argument("document_id")
@click.argument("state", type=click.Choice(["on", "off"]))
@click.option("--as", "actor", default="cli", show_default=True, help="Who sets the hold.")
@json_option
@click.pass_obj
def hold(settings: Settings, document_id: str, state: str, actor: str, as_json: bool) -> None:
    """Set or lift the legal hold on an archived document (kept past its retention date)."""
    from pipeline.documents.hold import set_legal_hold

    status_out(set_legal_hold(settings, document_id, state == "on", actor), as_json)


COMMANDS = (create, status, blocking, sign, upload, download, close, decline, revise, void,
            reassign, resolve, progress, action_done, hold)
