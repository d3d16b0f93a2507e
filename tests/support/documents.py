"""Documents made without LibreOffice: a blank page with one empty signature field stands
in for the rendered form, recorded with the same events ``create`` writes. For tests of
what happens around a document (access, mail, throttling, uploads), not of rendering."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime

from pipeline.config import Settings
from pipeline.documents.repository import projection, revision_store
from pipeline.documents.state import Member, fold
from pipeline.forms.manifest import get_template
from pipeline.forms.validate import validate_form
from pipeline.record import database, ledger
from tests.support.forms import example
from tests.support.hostile import blank_with_field

TEMPLATE = "requirement_confirmation"


def quick_document(settings: Settings, *, party: str = "lina", creator: str = "zhangwei",
                   number: str = "2024-产品部-001", request_key: str | None = None) -> str:
    """Record a document whose one step (the receiver's) is ``party``'s, without rendering:
    its revision is a blank page with an empty ``receiver`` field."""
    template = get_template(TEMPLATE)
    form = validate_form(template, example(TEMPLATE))
    order = next(role.order for role in template.roles if role.key == "receiver")
    store = revision_store(settings)
    prepared = store.put(blank_with_field("receiver"))
    document_id = f"doc-{datetime.now(UTC).strftime('%H%M%S%f')}"
    member = Member(role="receiver", order=order, index=None, party=party, field="receiver")
    events = [
        ledger.new_event(document_id, "created", creator, {
            "template": TEMPLATE, "template_version": template.version, "number": number,
            "form": form, "members": [asdict(member)], "important": False}),
        ledger.new_event(document_id, "prepared", creator, {"fields": ["receiver"],
                                                            "stored": [prepared]},
                         revision_after=prepared),
    ]
    state = fold([{**e, "seq": 0} for e in events])
    with database.connection(settings.database) as conn:
        ledger.append(conn, events, projection={**projection(state),
                                                "request_key": request_key})
    return document_id


def event_kinds(settings: Settings, document_id: str) -> list[str]:
    with database.connection(settings.database) as conn:
        return [e["kind"] for e in database.select_events(conn, document_id)]
