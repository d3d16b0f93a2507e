"""The review report: per template, party and department, CSV and PNG chart."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

from PIL import Image

from pipeline.audit.review import review, review_chart, review_csv
from pipeline.documents.create import create_document
from pipeline.documents.followup import follow_up
from pipeline.documents.sign import sign_document
from pipeline.documents.steps import decline_document
from tests.conftest import example
from tests.test_followup import settings, smtp  # noqa: F401 - fixtures

COUNTERSIGN = str(Path(sys.executable).with_name("countersign"))


def test_review_counts_deemed_consent_declines_and_overdue(settings, pool):  # noqa: F811
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
    assert rows[("party", "zhangwei")]["median_hours"] is not None
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
