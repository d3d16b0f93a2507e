"""The status of one document as every surface shows it: built once from the state, answered
by the API as it is, printed by the CLI (``--json`` is its JSON) and rendered by the pages.

The field order is the order of the JSON keys, which clients read: append, never reorder.
"""

from __future__ import annotations

from datetime import datetime, tzinfo
from typing import Any

from pydantic import BaseModel

from pipeline.documents.state import (
    DocumentState,
    Status,
    blocking,
    due_time,
    next_members,
    status_of,
    unmet_requirements,
)
from pipeline.forms.manifest import Template


class SignedItem(BaseModel):
    """A filled signature field: signed, or deemed consent where silence counts (never a
    signature)."""

    role: str
    field: str
    party: str
    signed_at: str
    certificate_sha256: str | None
    deemed_consent: bool


class NextItem(BaseModel):
    """A field whose turn it is: who, since when, until when."""

    role: str
    field: str
    party: str
    since: str
    due: str
    # Fields this member must fill before signing (an issue's result_confirmation).
    needs: list[str] = []

    def is_overdue(self, now: datetime | None = None) -> bool:
        """Return True if the due time is before ``now`` (default: the current time)."""
        return datetime.fromisoformat(self.due) < (now or datetime.now().astimezone())


class Declined(BaseModel):
    party: str
    reason: str
    at: str


class Voided(BaseModel):
    actor: str
    reason: str
    at: str


class DocumentStatus(BaseModel):
    """Who signed, who is next and until when, what blocks closure (times in the service's
    time zone)."""

    id: str
    number: str
    template: str
    template_version: int
    status: Status
    revision: str | None
    signed: list[SignedItem]
    next: list[NextItem]
    blocking: list[str]
    archive: str | None = None
    declined: Declined | None = None
    voided: Voided | None = None
    progress: list[dict[str, Any]] = []
    action_items_done: list[int] = []
    started: str | None = None
    creator: str | None = None
    created_at: str | None = None
    # A revision of a declined document names the one it replaces; that one names it back.
    supersedes: str | None = None
    superseded_by: str | None = None
    legal_hold: bool = False

    def as_json(self) -> dict[str, Any]:
        """Return the status as the JSON of the data contract."""
        return self.model_dump(mode="json")

    def waiting_for(self, party: str) -> list[NextItem]:
        """Return the fields ``party`` has to sign now."""
        return [item for item in self.next if item.party == party]


def status_report(state: DocumentState, template: Template, zone: tzinfo,
                  today: str | None = None) -> DocumentStatus:
    """Return the status of ``state`` (times shown in ``zone``; ``today``, an ISO date,
    marks overdue action items)."""
    roles = {role.key: role for role in template.roles}
    started = datetime.fromisoformat(state.step_started_at or state.created_at)

    def shown(at: datetime) -> str:
        return at.astimezone(zone).isoformat(timespec="seconds")

    return DocumentStatus(
        id=state.id, number=state.number, template=state.template,
        template_version=state.template_version, status=status_of(state),
        revision=state.head_revision,
        signed=[SignedItem(role=m.role, field=m.field, party=state.signed[m.field].party,
                           signed_at=shown(datetime.fromisoformat(state.signed[m.field].at)),
                           certificate_sha256=state.signed[m.field].certificate_sha256,
                           deemed_consent=state.signed[m.field].deemed)
                for m in state.members if m.field in state.signed],
        next=[NextItem(role=m.role, field=m.field, party=m.party, since=shown(started),
                       due=shown(due_time(roles[m.role], started)),
                       needs=[spec.name for spec in unmet_requirements(state, template, m)])
              for m in next_members(state)],
        blocking=blocking(state, template, today),
        archive=state.archive,
        declined=Declined(**state.declined) if state.declined else None,
        voided=Voided(**state.voided) if state.voided else None,
        progress=list(state.progress),
        action_items_done=sorted(state.action_items_done),
        started=shown(started), creator=state.creator,
        created_at=shown(datetime.fromisoformat(state.created_at)),
        supersedes=state.supersedes, superseded_by=state.superseded_by,
        legal_hold=state.legal_hold)
