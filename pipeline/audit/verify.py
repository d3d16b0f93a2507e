"""Audit: verify any PDF, or a ledger document against everything the ledger says of it.

For a file: every signature and document timestamp through the validation helper (a closed
document is judged offline, from the revocation data it carries). For a ledger document,
also: the expected parties signed in the expected order with the certificates the ledger
recorded, every stored revision still hashes to its name, the chain verifies, and every
revision is compared with the stored one before it — the PDF begins with the rendered PDF
the ledger recorded, preparing added only the empty fields, each signature's revision wrote
only its own field, closing only revision data and the archive timestamp. A validator that
sees only the final file cannot tell what the first signer's own revision changed; the
stored revisions can. An audit that names who asked (``actor``: the CLI's ``verify
--document``) is recorded in the ledger (``verified``); a read through the API is only a
read and records nothing.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pipeline.config import Settings
from pipeline.documents.events import SIGNATURES, EventKind
from pipeline.signing_setup import trust_for
from signing.ltv import LONG_TERM_CHANGES
from signing.revisions import Permitted, check_revision
from signing.validation import validate_pdf

if TYPE_CHECKING:
    from pipeline.record.store import Store


def verify_bytes(settings: Settings, data: bytes) -> dict[str, Any]:
    """Return the ``verify`` JSON for one PDF (never raises on hostile input)."""
    trust = trust_for(settings)
    offline = b"/DSS" in data  # it carries its own revocation data: judge it by that
    report = validate_pdf(data, trust.offline() if offline else trust, offline=offline)
    return {**report.as_dict(), "long_term": offline}


def _permitted(kind: str, data: dict, fields: frozenset[str], first: bool
               ) -> Permitted | None:
    """What an event of ``kind`` may have written into the PDF (None: nothing at all)."""
    if kind == EventKind.PREPARED or (kind == EventKind.PROGRESS_ENTRY
                                      and data.get("rendered")):
        return Permitted(new_signature_fields=frozenset(data.get("fields", fields)))
    if kind in SIGNATURES:
        return Permitted(signature_field=data["field"], certify=first)
    if kind == EventKind.CLOSED:
        return LONG_TERM_CHANGES
    return None


def revision_problems(events: list[dict], store: Store, fields: frozenset[str],
                      head: str | None) -> list[str]:
    """Return what each stored revision changed beyond what its event allowed, and whether
    the current PDF still begins with the rendered PDF the ledger recorded."""
    problems: list[str] = []
    rendered = None
    first = True
    for event in events:
        kind, after = event["kind"], event["revision_after"]
        if not after:
            continue
        data = json.loads(event["data"])
        if kind == EventKind.RENDERED:
            rendered = after
            continue
        before = event["revision_before"]
        if kind == EventKind.PROGRESS_ENTRY and data.get("rendered"):
            rendered = before = data["stored"][1]  # rendered again: a new first revision
        permitted = _permitted(kind, data, fields, first)
        first = first and kind not in SIGNATURES
        label = f"{after[:12]}（{kind}，{event['actor']}）"
        if permitted is None:
            problems.append(f"修订版本 {label} 不应改动 PDF / revision {after[:12]} was "
                            f"recorded by a {kind} event, which may not change the PDF")
            continue
        if not before or store.verify(before) or store.verify(after):
            continue  # a missing or altered stored revision is reported on its own
        for change in check_revision(store.get(before), store.get(after), permitted):
            problems.append(f"修订版本 {label} 超出其权限：{change.zh} / revision "
                            f"{after[:12]} ({kind} by {event['actor']}) changed more than it "
                            f"may: {change.en}")
    if rendered and head and not (store.verify(rendered) or store.verify(head)) \
            and not store.get(head).startswith(store.get(rendered)):
        problems.append(f"当前 PDF 不是从台账记录的渲染结果 {rendered[:12]} 开始的 / the current "
                        f"PDF does not begin with the rendered PDF the ledger recorded "
                        f"({rendered[:12]})")
    return problems


def verify_document(settings: Settings, document_id: str, actor: str | None = None
                    ) -> dict[str, Any]:
    """Return the ``verify`` JSON for a ledger document, with the ledger's own checks;
    with ``actor``, record the verdict as a ``verified`` event by that actor."""
    # The ledger's modules are imported here: ``verify FILE`` needs none of them (nor the
    # pydantic models they bring), and starts as fast as the peer tools it is measured
    # against (bench/sign.py).
    from pipeline.documents.repository import (
        append_checked,
        document_events,
        load_state,
        revision_store,
        verify_ledger,
    )
    from pipeline.record import ledger

    state = load_state(settings, document_id)
    store = revision_store(settings)
    events = document_events(settings, document_id)
    problems: list[str] = []
    revisions = {e[key] for e in events for key in ("revision_before", "revision_after")
                 if e[key]}
    for digest in sorted(revisions):
        trouble = store.verify(digest)
        if trouble:
            problems.append(f"修订版本 {digest} {trouble} / stored revision {digest} is "
                            f"{trouble}")
    problems += verify_ledger(settings).problems
    problems += revision_problems(events, store, frozenset(m.field for m in state.members),
                                 state.head_revision)
    if store.verify(state.head_revision) is None:
        result = verify_bytes(settings, store.get(state.head_revision))
    else:
        result = {"valid": False, "indication": "INDETERMINATE", "subindication": None,
                  "signatures": [], "document_timestamps": [], "problems": [],
                  "warnings": []}
    expected = []
    for event in events:
        if event["kind"] in SIGNATURES:
            data = json.loads(event["data"])
            expected.append((data["field"], data.get("certificate_sha256")))
    found = [(s["field"], s["certificate_sha256"]) for s in result["signatures"]]
    if found != expected:
        problems.append(
            "签名与台账记录不一致 / the signatures do not match the ledger: expected "
            + ", ".join(f"{f} ({(c or '')[:12]})" for f, c in expected) + "; found "
            + ", ".join(f"{f} ({(c or '')[:12]})" for f, c in found))
    fields = {m.field: m.order for m in state.members}
    orders = [fields.get(f, 0) for f, _ in found]
    if orders != sorted(orders):
        problems.append("签署顺序错误 / the signatures are out of the template's order")
    result = {**result, "document": document_id, "number": state.number,
              "problems": [*result["problems"], *problems]}
    result["valid"] = bool(result["valid"]) and not problems
    if problems:  # the ledger's own evidence says the document is not what was signed
        result["indication"] = "TOTAL_FAILED"
    if actor is not None:
        event = ledger.new_event(document_id, EventKind.VERIFIED, actor,
                                 {"valid": result["valid"], "problems": len(result["problems"])})
        append_checked(settings, state, [event])
    return result


REPORT = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<title>验证报告 / Verification report</title>
<style>
body { font-family: "Noto Sans CJK SC", sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; width: 100%; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #999; padding: 0.4em; text-align: left; vertical-align: top; }
th { background: #eef2f8; } .ok { color: #1e7d32; } .bad { color: #b71c1c; }
@media print { body { margin: 0; } }
</style></head><body>
<h1>验证报告 <small>Verification report</small></h1>
<p>{{ subject }} · {{ generated }}</p>
<p class="{{ 'ok' if report.valid else 'bad' }}"><strong>
{{ words[report.indication] }}</strong> ({{ report.indication }})</p>
{% if report.problems %}<ul>{% for p in report.problems %}<li class="bad">{{ p }}</li>
{% endfor %}</ul>{% endif %}
{% if report.warnings %}<ul>{% for w in report.warnings %}<li>{{ w }}</li>
{% endfor %}</ul>{% endif %}
<table><tr><th>签字栏 Field</th><th>签署人 Signer</th><th>结论 Verdict</th>
<th>完整 Intact</th><th>可信 Trusted</th><th>时间戳 Timestamp</th>
<th>修改 Changes after</th><th>问题 Problems</th></tr>
{% for s in report.signatures + report.get('document_timestamps', []) %}<tr>
<td>{{ s.field }}</td><td>{{ s.signer }}</td>
<td class="{{ 'ok' if s.valid else 'bad' }}">{{ words[s.indication] }}
{{ s.subindication or '' }}</td>
<td>{{ s.intact }}</td><td>{{ s.trusted }}</td><td>{{ s.timestamp or '—' }}</td>
<td>{{ s.modification_level or '—' }}</td><td>{{ s.problems | join('; ') }}</td></tr>
{% endfor %}</table>
</body></html>
"""


WORDS = {"TOTAL_PASSED": "有效 / VALID", "INDETERMINATE": "无法确定 / INDETERMINATE",
         "TOTAL_FAILED": "无效 / INVALID"}


def report_html(report: dict[str, Any], subject: str) -> str:
    """Return the audit report as a printable bilingual HTML page."""
    # jinja2 is imported here: only ``verify --html`` needs it, and ``verify`` should start
    # as fast as the peer tools it is compared with.
    import jinja2

    return jinja2.Environment(autoescape=True).from_string(REPORT).render(
        report=report, subject=subject, words=WORDS,
        generated=datetime.now().astimezone().isoformat(timespec="seconds"))
