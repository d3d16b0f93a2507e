"""Commands that set up an installation: ``init``, ``parties``, ``templates``, ``tokens``."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from pipeline.cli.common import emit, json_option, passphrase
from pipeline.config import Settings
from pipeline.errors import BadInput
from pipeline.people.access import Role


@click.command()
@json_option
@click.pass_obj
def init(settings: Settings, as_json: bool) -> None:
    """Create the data folder: database, local CA, demo parties (safe to run again)."""
    from pipeline.people.parties import DEMO_PASSPHRASE
    from pipeline.people.setup import initialise

    result = initialise(settings)
    if as_json:
        emit({"data_dir": str(result.data_dir), "store": result.store, "keys": result.keys,
              "created_ca": result.created_ca,
              "demo_parties": [p.summary() for p in result.demo_parties],
              "demo_passphrase": DEMO_PASSPHRASE if result.demo_parties else None,
              "demo_tokens": result.demo_tokens})
        return
    click.echo(f"data folder ready: {result.data_dir}")
    click.echo(f"store ready: {result.store}")
    if result.created_ca:
        click.echo(f"local CA created in {result.keys.rstrip('/')}/ca")
    click.echo(f"keys (encrypted) kept in {result.keys}")
    if result.demo_parties:
        click.echo(f"demo parties (key passphrase: {DEMO_PASSPHRASE!r}):")
        for party in result.demo_parties:
            click.echo(f"  {party.id:<10} {party.name} {party.dept} <{party.email}>  "
                       f"web token: {result.demo_tokens[party.id]}")
        click.echo(f"admin web token: {result.demo_tokens['admin']}")
        click.echo(f"sign in at {settings.base_url.rstrip('/')}/login with one of these "
                   "tokens (they are shown only now)")
    else:
        click.echo("already set up: tokens are shown only when made; make a new one with\n"
                   "  countersign tokens create --role admin\n"
                   "  countersign tokens create --role party --party PARTY_ID\n"
                   f"and sign in at {settings.base_url.rstrip('/')}/login")


@click.command()
@json_option
@click.pass_obj
def migrate(settings: Settings, as_json: bool) -> None:
    """Bring the database schema to the newest version (run once before new servers start;
    every process also does it on first connection)."""
    from pipeline.record.engine import migrate as migrate_database

    before, after = migrate_database(settings.database)
    if as_json:
        emit({"before": before, "after": after})
    elif before == after:
        click.echo(f"database schema already at revision {after}")
    else:
        click.echo(f"database schema migrated: {before or 'empty'} → {after}")


@click.group()
def parties() -> None:
    """The people who sign: list, add."""


@parties.command("list")
@json_option
@click.pass_obj
def parties_list(settings: Settings, as_json: bool) -> None:
    """List the parties: id, name, department, e-mail, certificate."""
    from pipeline.people.parties import list_parties

    found = list_parties(settings)
    if as_json:
        emit([party.summary() for party in found])
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
    from pipeline.people.parties import add_party

    p12 = None
    if p12_path is not None:
        try:
            p12 = p12_path.read_bytes()
        except OSError as exc:
            raise BadInput(f"无法读取 {p12_path}", f"cannot read {p12_path}: {exc.strerror}"
                           ) from None
    key_passphrase = (passphrase(passphrase_file, confirm=issue_cert)
                      if issue_cert or p12 is not None else None)
    party = add_party(settings, name=name, dept=dept, email=email, party_id=party_id,
                      superior_email=superior_email, issue_cert=issue_cert, p12=p12,
                      passphrase=key_passphrase)
    if as_json:
        emit(party.summary())
    else:
        click.echo(f"added {party.id}: {party.name} {party.dept} <{party.email}>")


@parties.command("add-cert")
@click.argument("party_id")
@click.argument("certificate", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--label", default="", help="A name to recognise the certificate by.")
@json_option
@click.pass_obj
def parties_add_cert(settings: Settings, party_id: str, certificate: Path, label: str,
                     as_json: bool) -> None:
    """Register a certificate (PEM or DER) as the party's: uploads signed with it count."""
    from pipeline.people.parties import register_certificate

    try:
        data = certificate.read_bytes()
    except OSError as exc:
        raise BadInput(f"无法读取 {certificate}", f"cannot read {certificate}: {exc.strerror}"
                       ) from None
    fingerprint = register_certificate(settings, party_id, data, label)
    if as_json:
        emit({"party": party_id, "certificate_sha256": fingerprint})
    else:
        click.echo(f"{party_id}: registered certificate {fingerprint}")


@click.group()
def templates() -> None:
    """The document templates: list, show, check."""


@templates.command("list")
@json_option
def templates_list(as_json: bool) -> None:
    """List the templates: key, title, version."""
    from pipeline.forms.manifest import list_templates

    items = [template.summary() for template in list_templates()]
    if as_json:
        emit(items)
        return
    for item in items:
        click.echo(f"{item['key']:<26} v{item['version']}  {item['title']}  ({item['title_en']})")


@templates.command("show")
@click.argument("key")
@json_option
def templates_show(key: str, as_json: bool) -> None:
    """Show a template's fields, roles, numbering and closure rule."""
    from pipeline.forms.manifest import get_template

    described = get_template(key).describe()
    if as_json:
        emit(described)
        return
    click.echo(f"{described['title']} ({described['title_en']})  {key} v{described['version']}")
    click.echo("fields (* required):")
    for spec in described["fields"]:
        _print_field(spec, "  ")
    click.echo("roles (in signing order):")
    for role in described["roles"]:
        deadline = (f"{role['deadline_working_days']} working days"
                    if role["deadline_working_days"] else f"{role['deadline_hours']} h")
        group = " parallel group" if role["parallel_group"] else ""
        consent = ", silence = consent" if role["deemed_consent"] else ""
        needs = (f", fills {', '.join(role['requires_fields'])} first (resolve)"
                 if role["requires_fields"] else "")
        click.echo(f"  {role['order']}. {role['key']:<12} {role['label_zh']} "
                   f"({role['label_en']}) deadline {deadline}{group}{consent}{needs}")
    click.echo(f"numbering: {described['numbering']['pattern']}")
    required = described["closure"]["required_fields"]
    click.echo(f"closure needs: {', '.join(required) if required else 'every signature'}")


def _print_field(spec: dict, indent: str) -> None:
    """One line per field: name, type, labels, and what a value may be; a table's columns
    or an object's keys follow, indented."""
    mark = "*" if spec["required"] else " "
    kind = {"table": "table of", "object": "object of", "list": "list of text"}.get(
        spec["type"], spec["type"])
    limits = []
    if spec.get("values"):
        limits.append(f"one of {' / '.join(spec['values'])}")
    if spec["type"] == "date":
        limits.append("YYYY-MM-DD")
    if spec["type"] == "datetime":
        limits.append("YYYY-MM-DDTHH:MM")
    if spec.get("max_items"):
        limits.append(f"at most {spec['max_items']} rows")
    if spec.get("max_length") and spec["type"] in ("text", "multiline", "list"):
        limits.append(f"≤ {spec['max_length']} characters")
    extra = f"  [{'; '.join(limits)}]" if limits else ""
    click.echo(f"{indent}{mark} {spec['name']:<{24 - len(indent)}} {kind:<10} "
               f"{spec['label_zh']} ({spec['label_en']}){extra}")
    for column in spec.get("columns", ()):
        _print_field(column, indent + "    ")


@templates.command("check")
@click.argument("path", type=click.Path(path_type=Path))
@json_option
def templates_check(path: Path, as_json: bool) -> None:
    """Compare a template folder's .docx with its manifest; exit 1 on any mismatch."""
    from pipeline.render.template_check import check_path

    template, problems = check_path(path)
    if as_json:
        emit({"key": template.key, "ok": not problems,
              "problems": [{"zh": p.zh, "en": p.en} for p in problems]})
    else:
        for problem in problems:
            click.echo(f"{template.key}: {problem}", err=True)
        if not problems:
            click.echo(f"{template.key}: ok")
    if problems:
        sys.exit(1)


@click.group()
def tokens() -> None:
    """API tokens (shown once, stored hashed) and web sessions: create, list, revoke."""


@tokens.command("create")
@click.option("--role", "role_name", required=True,
              type=click.Choice([role.value for role in Role]), help="What the token may do.")
@click.option("--party", "party_id", help="The party a party token acts as.")
@click.option("--label", default="", help="A name to recognise the token by.")
@click.pass_obj
def tokens_create(settings: Settings, role_name: str, party_id: str | None, label: str) -> None:
    """Create an API token and print it (it cannot be shown again)."""
    from pipeline.people.access import create_token

    click.echo(create_token(settings, role_name, party_id, label))


@tokens.command("list")
@json_option
@click.pass_obj
def tokens_list(settings: Settings, as_json: bool) -> None:
    """List tokens (revoked ones marked) and open web sessions, by id (never the secret)."""
    from pipeline.people.access import list_credentials

    found = list_credentials(settings)
    if as_json:
        emit(found)
        return
    for item in found:
        state = f"revoked {item['revoked_at']}" if item.get("revoked_at") else (
            f"until {item['expires_at']}" if item["kind"] == "session" else "active")
        click.echo(f"{item['id']:<17} {item['role']:<8} {item['party'] or '-':<12} "
                   f"{item['label']:<18} {item['created_at'][:19]}  {state}")


@tokens.command("revoke")
@click.argument("credential_id")
@json_option
@click.pass_obj
def tokens_revoke(settings: Settings, credential_id: str, as_json: bool) -> None:
    """Revoke a token (and every session opened with it) or one web session."""
    from pipeline.people.access import revoke

    revoked = revoke(settings, credential_id)
    emit(revoked) if as_json else click.echo(f"revoked {revoked['kind']} {revoked['id']}")


COMMANDS = (init, migrate, parties, templates, tokens)
