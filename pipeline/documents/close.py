"""Close a document: closure rules, long-term validation, certificate of completion, archive."""

from __future__ import annotations

import json
from datetime import date, datetime

from pipeline.config import Settings
from pipeline.documents.certificate import certificate_docx
from pipeline.documents.events import EventKind
from pipeline.documents.repository import (
    append_checked,
    document_events,
    load_state,
    report_of,
    revision_store,
)
from pipeline.documents.state import Status, blocking, status_of
from pipeline.documents.status import DocumentStatus
from pipeline.errors import ClosureRefused, NotYourTurn, OperationFailed
from pipeline.forms.manifest import get_template
from pipeline.record import ledger
from pipeline.record.crashpoints import crash_point
from pipeline.record.store import Archival, archive_path
from pipeline.render.libreoffice import ConverterPool
from pipeline.signing_setup import local_ca, signing_environment
from signing.ltv import LONG_TERM_CHANGES, add_long_term_validation
from signing.revisions import check_revision
from signing.sign import seal_pdf
from signing.validation import validate_pdf


def years_after(day: date, years: int) -> date:
    """Return the same day ``years`` later (29 February becomes 28 February)."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return day.replace(year=day.year + years, day=28)


def close_document(settings: Settings, document_id: str, pool: ConverterPool,
                   actor: str = "cli") -> DocumentStatus:
    """Check every closure rule, add long-term validation and write the archive package.

    Two steps, each its own ledger append, so that running ``close`` again after a crash
    finishes what is missing and repeats nothing: (1) closed, with the B-LTA revision;
    (2) archived, with the package that holds every event up to and including (1).
    """
    state = load_state(settings, document_id)
    template = get_template(state.template)
    store = revision_store(settings)
    if not state.closed_at:
        if status_of(state) != Status.COMPLETED or blocking(state, template):
            reasons = blocking(state, template) or [f"status is {status_of(state)}"]
            raise ClosureRefused("文档不能关闭：" + "；".join(reasons),
                                 "the document cannot close: " + "; ".join(reasons))
        env = signing_environment(settings)
        head = store.get(state.head_revision)
        final = add_long_term_validation(head, env.trust, env.tsa)
        stray = check_revision(head, final, LONG_TERM_CHANGES)
        if stray:
            raise OperationFailed(f"长期验证数据之外还有修改：{stray[0].zh}",
                                  f"closing changed more than revision data and the document "
                                  f"timestamp: {stray[0].en}")
        report = validate_pdf(final, env.trust.offline(), offline=True)
        if not report.valid:
            raise OperationFailed("长期验证后文档验证失败", "the closed document does not "
                                  "validate: " + json.dumps(report.as_dict(), ensure_ascii=False))
        final_sha = store.put(final)
        crash_point("close:after-store")
        closed = ledger.new_event(document_id, EventKind.CLOSED, actor,
                                  {"validation": report.as_dict()},
                                  revision_before=state.head_revision, revision_after=final_sha)
        state = append_checked(settings, state, [closed])
        crash_point("close:after-closed")
    if state.archive:
        return report_of(settings, state)
    events = document_events(settings, document_id)
    closed_data = json.loads(next(e for e in events if e["kind"] == EventKind.CLOSED)["data"])
    env = signing_environment(settings)
    certificate = seal_pdf(
        pool.convert(certificate_docx(state, template, events, state.head_revision,
                                      settings.zone)),
        local_ca(settings).system_signer(), env.tsa, env.trust,
        "完成证明 / certificate of completion")
    retention_until = years_after(datetime.fromisoformat(state.closed_at).date(),
                                  template.retention_years)

    def filed(name: str) -> Archival:
        return Archival(f"{template.archive_folder}/{archive_path(state.number, name)}",
                        retention_until)

    paths = {"certificate": filed("certificate.pdf"), "document": filed("document.pdf"),
             "package": filed("package.json")}
    certificate_sha = store.put(certificate, archive=paths["certificate"])
    store.put(store.get(state.head_revision), archive=paths["document"])
    package = {
        "document": document_id, "number": state.number, "template": state.template,
        "template_version": state.template_version, "final_pdf": state.head_revision,
        "certificate_of_completion": certificate_sha,
        "retention_years": template.retention_years,
        "retain_until": retention_until.isoformat(),
        "validation": closed_data["validation"],
        "ledger": [{k: e[k] for k in (*ledger.HASHED, "hash")} for e in events],
    }
    package_sha = store.put(ledger.canonical(package).encode("utf-8"),
                            archive=paths["package"])
    crash_point("close:after-package")
    archived = ledger.new_event(document_id, EventKind.ARCHIVED, actor,
                                {"package": package_sha, "certificate": certificate_sha,
                                 "retain_until": retention_until.isoformat(),
                                 "stored": [package_sha, certificate_sha],
                                 "archive_paths": {
                                     package_sha: paths["package"].path,
                                     certificate_sha: paths["certificate"].path,
                                     state.head_revision: paths["document"].path}})
    state = append_checked(settings, state, [archived])
    return report_of(settings, state)



def certificate_of_completion(settings: Settings, document_id: str) -> bytes:
    """Return the sealed certificate of completion of a closed, archived document."""
    state = load_state(settings, document_id)
    if not state.archive:
        raise NotYourTurn("文档尚未关闭归档，没有完成证明",
                          f"{document_id} is not closed and archived: it has no certificate "
                          "of completion yet")
    store = revision_store(settings)
    return store.get(json.loads(store.get(state.archive))["certificate_of_completion"])
