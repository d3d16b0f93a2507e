"""Create a document: validate, number, render, convert, prepare one field per party, record."""

from __future__ import annotations

import secrets
from dataclasses import asdict
from datetime import timedelta
from typing import Any

from pipeline.config import Settings
from pipeline.documents.events import EventKind
from pipeline.documents.notify import dispatch
from pipeline.documents.repository import document_status, projection, revision_store
from pipeline.documents.state import Member, fold
from pipeline.documents.status import DocumentStatus
from pipeline.errors import BadInput, RenderError
from pipeline.forms.manifest import Template, get_template
from pipeline.forms.numbering import (
    NumberReservation,
    record_number,
    release_number,
    reserve_number,
    today_in,
)
from pipeline.forms.validate import validate_form
from pipeline.people.parties import Party, get_party
from pipeline.record import anchors, database, ledger
from pipeline.record.crashpoints import crash_point
from pipeline.render.docx import render_docx
from pipeline.render.libreoffice import ConverterPool
from signing.fields import find_signature_places, prepare_fields


def request_scope(actor: str, request_key: str) -> str:
    """Return the stored form of ``actor``'s ``request_key``: unambiguous whatever either
    holds, so no caller can name another's key."""
    return ledger.canonical([actor, request_key])


def bind_members(template: Template, bindings: list[tuple[str, str]],
                  settings: Settings) -> tuple[list[Member], dict[str, Party]]:
    roles = {role.key: role for role in template.roles}
    for role_key, _ in bindings:
        if role_key not in roles:
            raise BadInput(f"模板 {template.key} 没有角色 {role_key!r}",
                           f"template {template.key} has no role {role_key!r} (roles: "
                           f"{', '.join(roles)})")
    roles_of: dict[str, list[str]] = {}
    for role_key, party_id in bindings:
        roles_of.setdefault(party_id, []).append(role_key)
    for party_id, held in roles_of.items():
        if len(set(held)) > 1:
            raise BadInput(f"{party_id} 不能在同一文档中同时担任多个角色（{'、'.join(held)}）",
                           f"{party_id} cannot hold two roles of one document "
                           f"({', '.join(held)})")
    members, parties = [], {}
    for role in template.roles:
        bound = [party_id for key, party_id in bindings if key == role.key]
        if not role.is_group and len(bound) != 1:
            raise BadInput(f"角色 {role.key}（{role.label_zh}）需要且只需要一个签署方",
                           f"role {role.key} needs exactly one --party {role.key}=ID "
                           f"(got {len(bound)})")
        if len(set(bound)) != len(bound):
            raise BadInput(f"角色 {role.key} 中有重复的签署方",
                           f"role {role.key} names a party twice")
        for index, party_id in enumerate(bound, start=1):
            parties[party_id] = get_party(settings, party_id)
            number = index if role.is_group else None
            members.append(Member(role=role.key, order=role.order, index=number,
                                  party=party_id,
                                  field=role.key if number is None else f"{role.key}-{number}"))
    return members, parties


def render_and_prepare(settings: Settings, template: Template, form: dict, number: str,
                        members: list[Member], parties: dict[str, Party],
                        pool: ConverterPool) -> tuple[str, str, str]:
    """Render, convert and add the signature fields; store all three; return their hashes
    (docx, rendered PDF, prepared PDF)."""
    signers: dict[str, list[dict[str, str]]] = {role.key: [] for role in template.roles}
    for member in members:
        party = parties[member.party]
        signers[member.role].append({"dept": party.dept, "name": party.name, "title": ""})
    docx = render_docx(template, form, number, signers)
    pdf = pool.convert(docx)
    places = {place.field: place for place in find_signature_places(pdf)}
    missing = [m.field for m in members if m.field not in places]
    if missing:
        raise RenderError(f"渲染后的文档缺少签字位：{', '.join(missing)}",
                          f"the rendered document has no signature place for {missing}")
    prepared = prepare_fields(pdf, [places[m.field] for m in members])
    store = revision_store(settings)
    return store.put(docx), store.put(pdf), store.put(prepared)


def create_document(settings: Settings, template_key: str, data: Any,
                    bindings: list[tuple[str, str]], pool: ConverterPool,
                    actor: str = "cli", request_key: str | None = None,
                    important: bool = False) -> DocumentStatus:
    """Validate, number, render, convert and prepare a document; return its status.

    ``bindings`` are (role, party id) pairs; a parallel group's role is given once per member.
    With ``request_key``, repeating the call (after a crash, a timeout) returns the document
    the first call made instead of making another. The key belongs to ``actor``: another
    caller using the same key neither sees that document nor blocks its own.
    """
    scoped_key = request_scope(actor, request_key) if request_key else None
    if scoped_key:
        with database.connection(settings.database) as conn:
            existing = database.document_for_request(conn, scoped_key)
        if existing:
            return document_status(settings, existing)
    template = get_template(template_key)
    form = validate_form(template, data)
    members, parties = bind_members(template, bindings, settings)
    with database.connection(settings.database) as conn:
        reservation = reserve_number(conn, template, form, today_in(settings),
                                     timedelta(minutes=settings.number_lease_minutes))
    try:
        document_id = _create(settings, template, form, reservation, members, parties, pool,
                              actor, scoped_key, important)
    except BaseException:
        # The number goes to the next document at once (after a kill, when its lease ends).
        with database.connection(settings.database) as conn:
            release_number(conn, reservation)
        raise
    crash_point("create:after-ledger")
    anchors.anchor_if_due(settings)
    dispatch(settings, document_id)
    return document_status(settings, document_id)


def _create(settings: Settings, template: Template, form: dict, reservation: NumberReservation,
            members: list[Member], parties: dict[str, Party], pool: ConverterPool, actor: str,
            scoped_key: str | None, important: bool) -> str:
    """Render, store and record the document under its reserved number; return its id."""
    number = reservation.number
    rendered = render_and_prepare(settings, template, form, number, members, parties, pool)
    docx_sha, pdf_sha, prepared_sha = rendered
    document_id = f"doc-{secrets.token_hex(6)}"
    events = [
        ledger.new_event(document_id, EventKind.CREATED, actor, {
            "template": template.key, "template_version": template.version,
            "number": number, "form": form, "members": [asdict(m) for m in members],
            "important": important}),
        ledger.new_event(document_id, EventKind.RENDERED, actor, {"docx": docx_sha,
                                                          "stored": [docx_sha, pdf_sha]},
                         revision_after=pdf_sha),
        ledger.new_event(document_id, EventKind.PREPARED, actor,
                         {"fields": [m.field for m in members]},
                         revision_before=pdf_sha, revision_after=prepared_sha),
    ]
    state = fold([{**e, "seq": 0} for e in events])
    crash_point("create:after-store")
    with database.connection(settings.database) as conn:
        ledger.append(conn, events,
                      projection={**projection(state), "request_key": scoped_key},
                      within=lambda c: record_number(c, reservation, document_id))
    return document_id

