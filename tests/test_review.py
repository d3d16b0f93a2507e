"""The review report: per template, party and department, CSV and PNG chart."""

from __future__ import annotations

import io
import json
import subprocess
from datetime import datetime, timedelta

import pytest
from PIL import Image

from pipeline.audit.review import review, review_chart, review_csv
from pipeline.documents.create import create_document
from pipeline.documents.followup import follow_up
from pipeline.documents.repository import document_events
from pipeline.documents.sign import sign_document
from pipeline.documents.state import fold
from pipeline.documents.steps import decline_document
from pipeline.errors import BadInput
from pipeline.record import database, ledger
from tests.support.cli import COUNTERSIGN
from tests.support.data import initialised
from tests.support.events import T0, created, event, signed
from tests.support.forms import example


@pytest.fixture
def settings(tmp_path, smtp):
    """A data folder whose mail (deemed consent is announced) goes to the test's server."""
    return initialised(tmp_path / "data", smtp_port=smtp[1])


@pytest.mark.slow
def test_review_counts_deemed_consent_declines_and_overdue(settings, pool):
    today = datetime.now(settings.zone).date().isoformat()
    sync = create_document(settings, "progress_sync", example("progress_sync"),
                           [("responsible", "wangqiang"), ("supporter", "zhaomin")], pool)
    sign_document(settings, sync.id, "wangqiang", "demo")
    letter = create_document(settings, "requirement_confirmation",
                             example("requirement_confirmation"),
                             [("requester", "zhangwei"), ("receiver", "lina")], pool)
    sign_document(settings, letter.id, "zhangwei", "demo")
    decline_document(settings, letter.id, "lina", "不同意")
    waiting = create_document(settings, "issue_tracking", example("issue_tracking"),
                              [("responsible", "wangqiang"), ("reporter", "liuyang")], pool)
    far = datetime.now(settings.zone) + timedelta(days=10)
    assert [a.kind for a in follow_up(settings, far) if a.kind == "deemed-consent"] == [
        "deemed-consent"]

    report = review(settings, today, today, now=far)
    rows = {(r["scope"], r["key"]): r for r in report["rows"]}
    assert report["documents"] == 3
    assert rows[("party", "zhaomin")]["deemed_consent"] == 1
    assert rows[("party", "lina")]["declines"] == 1
    assert rows[("department", "研发部")]["overdue"] == 1  # the issue, still waiting
    assert rows[("template", "requirement_confirmation")]["steps"] == 2
    # zhangwei's one step: from the letter's preparation to his signature.
    times = {e["kind"]: datetime.fromisoformat(e["at"])
             for e in document_events(settings, letter.id)}
    took = round((times["signed"] - times["prepared"]).total_seconds() / 3600, 2)
    assert rows[("party", "zhangwei")]["median_hours"] == took
    assert rows[("party", "zhangwei")]["p90_hours"] == took
    assert report["longest_waits"][0]["document"] == waiting.id
    assert report["longest_waits"][0]["outcome"] == "waiting"

    text = review_csv(report)
    assert text.splitlines()[0].startswith("scope,key,steps,median_hours,p90_hours,overdue")
    assert "department,市场部" in text
    png = review_chart(report)
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG" and image.width == 900

    out = subprocess.run([COUNTERSIGN, "--data-dir", str(settings.data_dir), "report",
                          "--since", today, "--until", today, "--json", "--chart",
                          str(settings.data_dir / "r.png")], capture_output=True, text=True)
    assert out.returncode == 0 and json.loads(out.stdout)["documents"] == 3
    assert (settings.data_dir / "r.png").read_bytes().startswith(b"\x89PNG")
    bad = subprocess.run([COUNTERSIGN, "--data-dir", str(settings.data_dir), "report",
                          "--since", "yesterday", "--until", today], capture_output=True,
                         text=True)
    assert bad.returncode == 2 and "not an ISO date" in bad.stderr


def test_review_turnaround_per_template_party_and_department(tmp_path):
    """Hand-written ledger, known times (hours after T0, Monday 09:00 in Shanghai)."""
    settings = initialised(tmp_path / "data")
    events = []

    def document(doc, key, bindings, hours):
        events.extend(created(settings, doc, key, bindings, hours=hours))
        return {m.field: m for m in members_of(events, doc)}

    a = document("a", "requirement_confirmation",
                 [("requester", "zhangwei"), ("receiver", "lina")], 0)
    events.append(signed("a", a["requester"], hours=2))
    events.append(event("a", "upload-rejected", "lina", {"party": "lina"}, hours=10))
    events.append(signed("a", a["receiver"], hours=30, kind="upload-accepted"))  # 4 h late
    b = document("b", "requirement_confirmation",
                 [("requester", "zhangwei"), ("receiver", "lina")], 1)
    events.append(signed("b", b["requester"], hours=5))
    events.append(event("b", "declined", "lina", {"party": "lina", "reason": "不同意"},
                        hours=6))
    document("c", "issue_tracking", [("responsible", "wangqiang"), ("reporter", "liuyang")],
             10)  # nobody answers: due three working days later, at 82 h
    e = document("e", "progress_sync", [("responsible", "wangqiang"),
                                        ("supporter", "zhaomin")], 3)
    events.append(signed("e", e["responsible"], hours=4))
    events.append(signed("e", e["supporter-1"], hours=28, kind="deemed-consent"))
    before = document("d", "progress_sync", [("responsible", "wangqiang"),
                                             ("supporter", "zhaomin")], -24)
    events.append(signed("d", before["responsible"], hours=-20))  # created before --since
    with database.connection(settings.database) as conn:
        ledger.append(conn, events)

    report = review(settings, "2024-05-20", "2024-05-21", now=T0 + timedelta(hours=100))
    assert report["documents"] == 4
    table = {(r["scope"], r["key"]): (r["steps"], r["median_hours"], r["p90_hours"],
                                      r["overdue"], r["deemed_consent"], r["declines"],
                                      r["rejected_uploads"]) for r in report["rows"]}
    assert table == {
        # steps, median h, p90 h, overdue, deemed consent, declines, rejected uploads
        ("template", "issue_tracking"): (1, None, None, 1, 0, 0, 0),
        ("template", "progress_sync"): (2, 12.5, 21.7, 0, 1, 0, 0),
        ("template", "requirement_confirmation"): (4, 3.0, 20.8, 1, 0, 1, 0),
        ("party", "lina"): (2, 14.5, 25.3, 1, 0, 1, 1),
        ("party", "wangqiang"): (2, 1.0, 1.0, 1, 0, 0, 0),
        ("party", "zhangwei"): (2, 3.0, 3.8, 0, 0, 0, 0),
        ("party", "zhaomin"): (1, 24.0, 24.0, 0, 1, 0, 0),
        ("department", "产品部"): (2, 14.5, 25.3, 1, 0, 1, 0),
        ("department", "市场部"): (3, 4.0, 20.0, 0, 1, 0, 0),
        ("department", "研发部"): (2, 1.0, 1.0, 1, 0, 0, 0),
    }
    assert [(w["document"], w["party"], w["hours"], w["outcome"])
            for w in report["longest_waits"][:3]] == [
        ("c", "wangqiang", 90.0, "waiting"), ("a", "lina", 28.0, "signed"),
        ("e", "zhaomin", 24.0, "deemed-consent")]
    with pytest.raises(BadInput, match="before --since"):
        review(settings, "2024-05-21", "2024-05-20")


def members_of(events: list[dict], doc: str):
    """Return the members of ``doc`` from its events so far."""
    return fold([e for e in events if e["document_id"] == doc]).members
