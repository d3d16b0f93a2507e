"""Resolve an issue: the responsible department records 结果确认 before it signs.

The seed's rule: the responsible department writes the result when the problem is solved, the
reporting side then signs its acceptance, and the issue cannot close before. So the field a
role ``requires_fields`` is filled through this step, never through the first form: the
unsigned document is rendered again with the text in place (new revisions, fields prepared
again) and the step is recorded in the ledger. Once anyone has signed, the PDF is fixed and
the text can no longer change.
"""

from __future__ import annotations

from pipeline.config import Settings
from pipeline.documents.create import render_and_prepare
from pipeline.documents.events import EventKind
from pipeline.documents.repository import append_checked, load_state, report_of
from pipeline.documents.state import DocumentState, Member, Status, status_of
from pipeline.documents.status import DocumentStatus
from pipeline.errors import BadInput, NotPermitted, NotYourTurn
from pipeline.forms.manifest import FieldSpec, Template, get_template
from pipeline.forms.validate import validate_form_value
from pipeline.people.parties import get_party
from pipeline.record import ledger
from pipeline.render.libreoffice import ConverterPool


def resolution_field(template: Template) -> tuple[FieldSpec, tuple[str, ...]]:
    """Return the field a role must fill before signing and the roles that fill it, or raise
    BadInput when the template has none (only issues are resolved)."""
    for role in template.roles:
        for name in role.requires_fields:
            spec = next(f for f in template.fields if f.name == name)
            roles = tuple(r.key for r in template.roles if name in r.requires_fields)
            return spec, roles
    raise BadInput(f"模板 {template.key} 没有需要填写结果的签字步骤",
                   f"template {template.key} has nothing to resolve (no role requires a field)")


def resolvers(state: DocumentState, roles: tuple[str, ...]) -> list[Member]:
    """Return the members who may record the result: those of the roles that require it."""
    return [m for m in state.members if m.role in roles]


def resolve_document(settings: Settings, document_id: str, text: str, actor: str,
                     pool: ConverterPool, admin: bool = False) -> DocumentStatus:
    """Record the result of an issue (its 结果确认) and return the status.

    Allowed to the party of the responsible role (or an administrator) while the document
    awaits signatures and nobody has signed yet; may be repeated to correct the text before
    signing. Raises BadInput for an empty or over-long text, NotPermitted for anyone else,
    NotYourTurn once signing has begun or the document has ended.
    """
    state = load_state(settings, document_id)
    template = get_template(state.template)
    spec, roles = resolution_field(template)
    allowed = resolvers(state, roles)
    if not admin and not any(m.party == actor for m in allowed):
        names = ", ".join(m.party for m in allowed)
        labels = [r for r in template.roles if r.key in roles]
        raise NotPermitted(
            f"只有{'、'.join(r.label_zh for r in labels)}（{names}）或管理员可以填写"
            f"「{spec.label_zh}」",
            f"only the {', '.join(r.label_en for r in labels)} ({names}) or an administrator "
            f"may record the {spec.label_en}")
    if status_of(state) != Status.AWAITING:
        raise NotYourTurn(f"文档状态为 {status_of(state)}，不能再填写{spec.label_zh}",
                          f"the document is {status_of(state)}; the {spec.label_en} can no "
                          "longer change")
    if state.signed:
        raise NotYourTurn(f"已有签字，{spec.label_zh}不能再修改",
                          f"signing has begun: the signed PDF is fixed, the {spec.label_en} "
                          "can no longer change")
    value = validate_form_value(spec, (text or "").strip())
    if not value:
        raise BadInput(f"请填写{spec.label_zh}", f"the {spec.label_en} is empty")
    form = {**state.form, spec.name: value}
    parties = {m.party: get_party(settings, m.party) for m in state.members}
    docx_sha, pdf_sha, prepared_sha = render_and_prepare(
        settings, template, form, state.number, list(state.members), parties, pool)
    event = ledger.new_event(document_id, EventKind.RESOLVED, actor, {
        "field": spec.name, "text": value, "stored": [docx_sha, pdf_sha]},
        revision_before=state.head_revision, revision_after=prepared_sha)
    return report_of(settings, append_checked(settings, state, [event]))
