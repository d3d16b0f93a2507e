"""Ledger events written by hand at chosen times, for the rules that read them (state,
deadlines, review) without rendering or signing anything."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime, timedelta

from pipeline.config import Settings
from pipeline.documents.create import bind_members
from pipeline.documents.state import Member
from pipeline.forms.manifest import get_template
from pipeline.record import ledger
from tests.support.forms import example

T0 = datetime(2024, 5, 20, 1, 0, tzinfo=UTC)  # Monday 2024-05-20, 09:00 in Shanghai


def at(hours: float) -> str:
    """Return the ISO time ``hours`` after T0."""
    return (T0 + timedelta(hours=hours)).isoformat()


def event(document_id: str, kind: str, actor: str, data: dict | None = None, *,
          hours: float, revision_after: str | None = None) -> dict:
    """Return an event as the ledger makes it, dated ``hours`` after T0."""
    made = ledger.new_event(document_id, kind, actor, data, revision_after=revision_after)
    return {**made, "at": at(hours)}


def created(settings: Settings, document_id: str, template_key: str,
            bindings: list[tuple[str, str]], *, hours: float = 0, form: dict | None = None,
            creator: str = "admin") -> list[dict]:
    """Return the events ``create`` writes for a document (created, rendered, prepared),
    its members bound as ``create`` binds them to the data folder's parties."""
    template = get_template(template_key)
    members, _ = bind_members(template, bindings, settings)
    return [
        event(document_id, "created", creator, {
            "template": template_key, "template_version": template.version,
            "number": f"2024-测试-{document_id}", "form": form or example(template_key),
            "members": [asdict(m) for m in members], "important": False}, hours=hours),
        event(document_id, "rendered", creator, {}, hours=hours, revision_after="pdf"),
        event(document_id, "prepared", creator, {}, hours=hours, revision_after="prepared"),
    ]


def signed(document_id: str, member: Member, *, hours: float,
           kind: str = "signed") -> dict:
    """Return the event of ``member`` signing (or ``kind``: upload-accepted,
    deemed-consent)."""
    data = {"field": member.field, "role": member.role, "party": member.party}
    if kind != "deemed-consent":
        data["certificate_sha256"] = f"cert-of-{member.party}"
    actor = "follow-up" if kind == "deemed-consent" else member.party
    return event(document_id, kind, actor, data, hours=hours,
                 revision_after=None if kind == "deemed-consent" else f"after-{member.field}")
