"""Revise a declined document: the next round of communication until consensus.

The revision is a new document made from the changed form. It keeps the declined document's
number with a version mark (``2026-市场-001 第2版``), names the one it supersedes, and starts
signing again from the first role; the declined document becomes ``superseded`` and points
forward to it. Both sides are recorded in one ledger transaction, so neither can exist
without the other.
"""

from __future__ import annotations

import secrets
from dataclasses import asdict
from typing import Any

from pipeline.config import Settings
from pipeline.documents.create import bind_members, render_and_prepare
from pipeline.documents.events import EventKind
from pipeline.documents.notify import dispatch
from pipeline.documents.repository import (
    document_events,
    document_status,
    load_state,
    projection,
)
from pipeline.documents.state import Status, fold, status_of
from pipeline.documents.status import DocumentStatus
from pipeline.errors import Conflict, NotPermitted, NotYourTurn
from pipeline.forms.manifest import get_template
from pipeline.forms.numbering import next_version
from pipeline.forms.validate import validate_form
from pipeline.record import database, ledger
from pipeline.render.libreoffice import ConverterPool


def revise_document(settings: Settings, document_id: str, data: Any, actor: str,
                    pool: ConverterPool, bindings: list[tuple[str, str]] | None = None,
                    admin: bool = False) -> DocumentStatus:
    """Make the next version of a declined document from ``data``; return its status.

    Its creator (or an administrator) revises it. The parties stay those of the declined
    document unless ``bindings`` (role, party) name them again. Raises NotPermitted for
    anyone else, NotYourTurn unless the document is declined, ValidationFailed for a bad
    form.
    """
    old = load_state(settings, document_id)
    if not admin and actor != old.creator:
        raise NotPermitted(f"只有创建者 {old.creator} 或管理员可以修订此文档",
                           f"only the creator ({old.creator}) or an administrator may revise "
                           "this document")
    status = status_of(old)
    if status != Status.DECLINED:
        later = f"（已由 {old.superseded_by} 取代）" if old.superseded_by else ""
        raise NotYourTurn(f"只有被拒签的文档可以修订，此文档状态为 {status}{later}",
                          f"only a declined document can be revised; this one is {status}"
                          + (f" (superseded by {old.superseded_by})" if old.superseded_by
                             else ""))
    template = get_template(old.template)
    form = validate_form(template, data)
    members, parties = bind_members(
        template, bindings or [(m.role, m.party) for m in old.members], settings)
    number = next_version(old.number)
    docx_sha, pdf_sha, prepared_sha = render_and_prepare(settings, template, form, number,
                                                         members, parties, pool)
    new_id = f"doc-{secrets.token_hex(6)}"
    created = [
        ledger.new_event(new_id, EventKind.CREATED, actor, {
            "template": template.key, "template_version": template.version,
            "number": number, "form": form, "members": [asdict(m) for m in members],
            "important": old.important, "creator": old.creator, "supersedes": old.id}),
        ledger.new_event(new_id, EventKind.RENDERED, actor, {"docx": docx_sha,
                                                     "stored": [docx_sha, pdf_sha]},
                         revision_after=pdf_sha),
        ledger.new_event(new_id, EventKind.PREPARED, actor, {"fields": [m.field for m in members]},
                         revision_before=pdf_sha, revision_after=prepared_sha),
    ]
    superseded = ledger.new_event(old.id, EventKind.SUPERSEDED, actor, {"by": new_id,
                                                                "number": number})
    old_after = fold([*document_events(settings, old.id), {**superseded, "seq": 0}])
    new_state = fold([{**e, "seq": 0} for e in created])
    try:
        with database.connection(settings.database) as conn:
            ledger.append(conn, [superseded, *created], expect_head=old.head_revision,
                          check_head=True,
                          projection=[projection(old_after), projection(new_state)])
    except database.HeadMoved:
        raise Conflict("文档同时被修改，请重试",
                       "the declined document changed meanwhile; run the command again"
                       ) from None
    dispatch(settings, new_id)
    return document_status(settings, new_id)
