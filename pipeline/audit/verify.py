"""Audit: verify any PDF, or a ledger document against everything the ledger says of it.

For a file: every signature and document timestamp through the validation helper (a closed
document is judged offline, from the revocation data it carries). For a ledger document,
also: the expected parties signed in the expected order with the certificates the ledger
recorded, every stored revision still hashes to its name, and the chain verifies. An audit
that names who asked (``actor``: the CLI's ``verify --document``) is recorded in the ledger
(``verified``); a read through the API is only a read and records nothing.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import jinja2

from pipeline.config import Settings
from pipeline.documents.events import SIGNATURES, EventKind
from pipeline.documents.repository import (
    append_checked,
    document_events,
    load_state,
    revision_store,
    verify_ledger,
)
from pipeline.record import ledger
from pipeline.signing_setup import trust_for
from signing.validation import validate_pdf


def verify_bytes(settings: Settings, data: bytes) -> dict[str, Any]:
    """Return the ``verify`` JSON for one PDF (never raises on hostile input)."""
    trust = trust_for(settings)
    offline = b"/DSS" in data  # it carries its own revocation data: judge it by that
    report = validate_pdf(data, trust.offline() if offline else trust, offline=offline)
    return {**report.as_dict(), "long_term": offline}


def verify_document(settings: Settings, document_id: str, actor: str | None = None
                    ) -> dict[str, Any]:
    """Return the ``verify`` JSON for a ledger document, with the ledger's own checks;
    with ``actor``, record the verdict as a ``verified`` event by that actor."""
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
    if store.verify(state.head_revision) is None:
        result = verify_bytes(settings, store.get(state.head_revision))
    else:
        result = {"valid": False, "signatures": [], "document_timestamps": [], "problems": []}
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
    if actor is not None:
        event = ledger.new_event(document_id, EventKind.VERIFIED, actor,
                                 {"valid": result["valid"], "problems": len(result["problems"])})
        append_checked(settings, state, [event])
    return result


REPORT = jinja2.Environment(autoescape=True).from_string("""<!doctype html>
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
{{ '有效 / VALID' if report.valid else '无效 / INVALID' }}</strong></p>
{% if report.problems %}<ul>{% for p in report.problems %}<li class="bad">{{ p }}</li>
{% endfor %}</ul>{% endif %}
<table><tr><th>签字栏 Field</th><th>签署人 Signer</th><th>结论 Verdict</th>
<th>完整 Intact</th><th>可信 Trusted</th><th>时间戳 Timestamp</th>
<th>修改 Changes after</th><th>问题 Problems</th></tr>
{% for s in report.signatures + report.get('document_timestamps', []) %}<tr>
<td>{{ s.field }}</td><td>{{ s.signer }}</td>
<td class="{{ 'ok' if s.valid else 'bad' }}">{{ '有效 valid' if s.valid else '无效 invalid' }}</td>
<td>{{ s.intact }}</td><td>{{ s.trusted }}</td><td>{{ s.timestamp or '—' }}</td>
<td>{{ s.modification_level or '—' }}</td><td>{{ s.problems | join('; ') }}</td></tr>
{% endfor %}</table>
</body></html>
""")


def report_html(report: dict[str, Any], subject: str) -> str:
    """Return the audit report as a printable bilingual HTML page."""
    return REPORT.render(report=report, subject=subject,
                         generated=datetime.now().astimezone().isoformat(timespec="seconds"))
