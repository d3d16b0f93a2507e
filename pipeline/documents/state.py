"""A document's state, derived from its ledger events, and the rules read off it: who has
signed, who is next and until when, and what still blocks closure.

Nothing here touches the database: ``fold`` turns events into a DocumentState, and the rest
are functions of that state, the template and the current time.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from pipeline.documents.events import FIELD_FILLED, EventKind
from pipeline.forms.manifest import FieldSpec, RoleSpec, Template


class Status(StrEnum):
    """Where a document stands, as the data contract names it."""

    AWAITING = "awaiting_signatures"
    DECLINED = "declined"
    VOIDED = "voided"
    SUPERSEDED = "superseded"  # declined, then revised into a new document
    COMPLETED = "completed"
    CLOSED = "closed"


#: Documents still to be finished: they show in ``blocking`` and follow-up looks at them.
OPEN_STATUSES = (Status.AWAITING, Status.COMPLETED, Status.DECLINED)
#: Documents nothing more can be added to.
FINISHED_STATUSES = (Status.CLOSED, Status.VOIDED, Status.SUPERSEDED)


@dataclass(frozen=True)
class Member:
    """One signer of a role: the field it signs and the party bound to it."""

    role: str
    order: int
    index: int | None  # position in a parallel group, None for a single-member role
    party: str
    field: str


@dataclass(frozen=True)
class Signed:
    party: str
    at: str
    certificate_sha256: str | None
    deemed: bool = False


@dataclass(frozen=True)
class DocumentState:
    id: str
    template: str
    template_version: int
    number: str
    creator: str
    created_at: str
    form: dict[str, Any]
    members: tuple[Member, ...]
    head_revision: str | None = None
    signed: dict[str, Signed] = field(default_factory=dict)
    declined: dict[str, str] | None = None
    voided: dict[str, str] | None = None
    closed_at: str | None = None
    archive: str | None = None
    step_started_at: str | None = None
    progress: tuple[dict, ...] = ()
    action_items_done: frozenset[int] = frozenset()
    important: bool = False
    supersedes: str | None = None  # the declined document this one revises
    superseded_by: str | None = None  # the revision that replaced this one
    legal_hold: bool = False


def fold(events: list[dict]) -> DocumentState:
    """Return the state after ``events`` (one document's, in chain order)."""
    state: DocumentState | None = None
    for event in events:
        data = json.loads(event["data"])
        kind = event["kind"]
        if kind == EventKind.CREATED:
            state = DocumentState(
                id=event["document_id"], template=data["template"],
                template_version=data["template_version"], number=data["number"],
                creator=data.get("creator") or event["actor"], created_at=event["at"],
                form=data["form"], members=tuple(Member(**m) for m in data["members"]),
                important=bool(data.get("important")), supersedes=data.get("supersedes"))
            continue
        assert state is not None, "a document's first event is 'created'"
        if event["revision_after"]:
            state = replace(state, head_revision=event["revision_after"])
        if kind == EventKind.PREPARED:
            state = replace(state, step_started_at=event["at"])
        elif kind in FIELD_FILLED:
            signed = dict(state.signed)
            signed[data["field"]] = Signed(party=data["party"], at=event["at"],
                                           certificate_sha256=data.get("certificate_sha256"),
                                           deemed=kind == EventKind.DEEMED_CONSENT)
            state = replace(state, signed=signed)
            if _group_done(state, data["field"]):
                state = replace(state, step_started_at=event["at"])
        elif kind == EventKind.DECLINED:
            state = replace(state, declined={"party": data["party"], "reason": data["reason"],
                                             "at": event["at"]})
        elif kind == EventKind.VOIDED:
            state = replace(state, voided={"actor": event["actor"],
                                           "reason": data.get("reason", ""), "at": event["at"]})
        elif kind == EventKind.CLOSED:
            state = replace(state, closed_at=event["at"])
        elif kind == EventKind.ARCHIVED:
            state = replace(state, archive=data["package"])
        elif kind in (EventKind.HOLD_SET, EventKind.HOLD_LIFTED):
            state = replace(state, legal_hold=kind == EventKind.HOLD_SET)
        elif kind == EventKind.REASSIGNED:
            state = replace(state, members=tuple(
                replace(m, party=data["to"]) if m.field == data["field"] else m
                for m in state.members))
        elif kind == EventKind.PROGRESS_ENTRY:
            state = replace(state, progress=(*state.progress, data))
            if data.get("rendered"):  # re-rendered into the unsigned PDF: part of the form
                entry = {"date": data["date"], "text": data["text"]}
                updates = [*(state.form.get("progress_updates") or ()), entry]
                state = replace(state, form={**state.form, "progress_updates": updates})
        elif kind == EventKind.RESOLVED:
            state = replace(state, form={**state.form, data["field"]: data["text"]})
        elif kind == EventKind.SUPERSEDED:
            state = replace(state, superseded_by=data["by"])
        elif kind == EventKind.ACTION_ITEM_DONE:
            state = replace(state, action_items_done=state.action_items_done | {data["item"]})
    assert state is not None, "no events"
    return state


def involves(state: DocumentState, party: str) -> bool:
    """Return True if ``party`` created the document or is one of its signers."""
    return state.creator == party or any(m.party == party for m in state.members)


def _group_done(state: DocumentState, field_name: str) -> bool:
    order = next(m.order for m in state.members if m.field == field_name)
    return all(m.field in state.signed for m in state.members if m.order == order)


def status_of(state: DocumentState) -> Status:
    """Return the contract's status: awaiting_signatures, declined, voided, superseded,
    completed, closed."""
    if state.voided:
        return Status.VOIDED
    if state.closed_at:
        return Status.CLOSED
    if state.superseded_by:
        return Status.SUPERSEDED
    if state.declined:
        return Status.DECLINED
    if all(m.field in state.signed for m in state.members):
        return Status.COMPLETED
    return Status.AWAITING


def next_members(state: DocumentState) -> list[Member]:
    """Return the members who may sign now: the unsigned ones of the lowest pending order."""
    if status_of(state) != Status.AWAITING:
        return []
    pending = [m for m in state.members if m.field not in state.signed]
    lowest = min(m.order for m in pending)
    return [m for m in pending if m.order == lowest]


def unmet_requirements(state: DocumentState, template: Template,
                       member: Member) -> list[FieldSpec]:
    """Return the fields ``member``'s role must fill before it signs that are still empty."""
    role = next(r for r in template.roles if r.key == member.role)
    return [spec for spec in template.fields
            if spec.name in role.requires_fields and not state.form.get(spec.name)]


def add_working_days(start: datetime, days: int) -> datetime:
    """Return ``start`` plus ``days`` working days (Saturdays and Sundays skipped)."""
    current, left = start, days
    while left > 0:
        current += timedelta(days=1)
        if current.weekday() < 5:
            left -= 1
    return current


def due_time(role: RoleSpec, started: datetime) -> datetime:
    """Return when a member of ``role`` whose step began at ``started`` must have answered."""
    if role.deadline_working_days:
        return add_working_days(started, role.deadline_working_days)
    return started + timedelta(hours=role.deadline_hours or 24)


def blocking(state: DocumentState, template: Template, today: str | None = None) -> list[str]:
    """Return everything that keeps the document from closing, in Chinese and English.

    ``today`` (ISO date) marks open action items past their due date as overdue.
    """
    reasons = []
    if state.voided:
        return [f"文档已作废 / voided: {state.voided['reason']}"]
    if state.superseded_by:
        return [f"已由新版本取代 / superseded by {state.superseded_by}"]
    if state.declined:
        # Nobody can sign a declined document: it waits for a revision (or a void), not
        # for its parties.
        return [f"{state.declined['party']} 拒签 / declined by {state.declined['party']}:"
                f" {state.declined['reason']}",
                "请修订后重新发起或作废 / revise it (countersign revise) or void it"]
    roles = {role.key: role for role in template.roles}
    for member in state.members:
        if member.field not in state.signed:
            role = roles[member.role]
            needs = unmet_requirements(state, template, member)
            first = "".join(f"填写「{spec.label_zh}」并" for spec in needs)
            first_en = "".join(f"record the {spec.label_en} and " for spec in needs)
            reasons.append(f"等待{role.label_zh} {member.party} {first}签字 / waiting for "
                           f"{role.label_en} {member.party} to {first_en}sign "
                           f"({member.field})")
    for name in template.closure.required_fields:
        if not state.form.get(name):
            spec = next(f for f in template.fields if f.name == name)
            reasons.append(f"「{spec.label_zh}」尚未填写 / {spec.label_en} is still empty")
    if template.closure.open_action_items_block:
        for index, item in enumerate(state.form.get("action_items") or (), start=1):
            if index not in state.action_items_done:
                late = bool(today and item.get("due", "9999") < today)
                reasons.append(f"行动项 {index} {'已逾期' if late else '未完成'}："
                               f"{item.get('task', '')} / action item {index} is "
                               f"{'OVERDUE' if late else 'open'} (owner "
                               f"{item.get('owner', '')}, due {item.get('due', '')})")
    return reasons


def state_to_json(state: DocumentState) -> str:
    """Return ``state`` as JSON (the documents table keeps it to answer without folding)."""
    data = asdict(state)
    data["action_items_done"] = sorted(state.action_items_done)
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def state_from_json(text: str) -> DocumentState:
    """Return the DocumentState that :func:`state_to_json` wrote."""
    data = json.loads(text)
    data["members"] = tuple(Member(**m) for m in data["members"])
    data["signed"] = {k: Signed(**v) for k, v in data["signed"].items()}
    data["progress"] = tuple(data["progress"])
    data["action_items_done"] = frozenset(data["action_items_done"])
    return DocumentState(**data)


def next_due(state: DocumentState, template: Template) -> str | None:
    """Return the earliest due time of the members whose turn it is (UTC ISO), or None."""
    waiting = next_members(state)
    if not waiting:
        return None
    roles = {role.key: role for role in template.roles}
    started = datetime.fromisoformat(state.step_started_at or state.created_at)
    return min(due_time(roles[m.role], started) for m in waiting).astimezone(UTC).isoformat()
