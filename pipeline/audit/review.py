"""The quarterly review (seed rule 5): turnaround per template, party and department,
overdue and deemed-consent counts, declines, rejected uploads, and where documents waited
longest — as rows for a table or CSV, and a PNG chart."""

from __future__ import annotations

import csv
import io
import json
import statistics
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from pipeline.config import Settings
from pipeline.documents.events import FIELD_FILLED, SIGNATURES, EventKind
from pipeline.documents.state import due_time, fold, next_members
from pipeline.errors import BadInput
from pipeline.forms.manifest import get_template
from pipeline.people.parties import list_parties
from pipeline.record import database

CJK_FONT = Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")
CJK_SC_INDEX = 2  # the Simplified Chinese face of the collection


@dataclass(frozen=True)
class Step:
    """One member's turn on one document: when it began, ended (or not), and how."""

    document: str
    number: str
    template: str
    role: str
    party: str
    dept: str
    started: datetime
    ended: datetime | None
    due: datetime
    outcome: str  # signed, deemed-consent, declined, waiting
    field: str = ""

    @property
    def hours(self) -> float:
        return ((self.ended or self.due) - self.started).total_seconds() / 3600

    def waited(self, now: datetime) -> float:
        return ((self.ended or now) - self.started).total_seconds() / 3600

    def overdue(self, now: datetime) -> bool:
        return (self.ended or now) > self.due


@dataclass(frozen=True)
class ReviewRow:
    scope: str  # template, party or department
    key: str
    steps: int
    median_hours: float | None
    p90_hours: float | None
    overdue: int
    deemed_consent: int
    declines: int
    rejected_uploads: int


def _parse_day(text: str, zone, end: bool) -> datetime:
    try:
        day = datetime.fromisoformat(text)
    except ValueError:
        raise BadInput(f"日期格式错误：{text!r}", f"not an ISO date: {text!r}") from None
    if day.tzinfo is None:
        day = day.replace(tzinfo=zone)
    if end and len(text) == 10:
        day = day.replace(hour=23, minute=59, second=59)
    return day


def collect_steps(settings: Settings, since: datetime, until: datetime
                  ) -> tuple[list[Step], dict[str, int]]:
    """Return every step of documents created in [since, until], and rejected uploads per
    party."""
    depts = {party.id: party.dept for party in list_parties(settings)}
    steps: list[Step] = []
    rejected: dict[str, int] = defaultdict(int)
    with database.connection(settings.database) as conn:
        by_document: dict[str, list[dict]] = defaultdict(list)
        for row in database.iter_events(conn):
            event = dict(zip(database.EVENT_COLUMNS, row, strict=True))
            by_document[event["document_id"]].append(event)
    for events in by_document.values():
        created = datetime.fromisoformat(events[0]["at"])
        if not since <= created <= until:
            continue
        for event in events:
            if event["kind"] == EventKind.UPLOAD_REJECTED:
                rejected[event["actor"]] += 1
        steps += document_steps(events, depts)
    return steps, dict(rejected)


def document_steps(events: list[dict], depts: dict[str, str]) -> list[Step]:
    """Return the steps of one document's events (in chain order): one per turn answered
    (signed, deemed consent, declined) and one per turn still waiting; ``depts`` maps
    party ids to departments."""
    template = get_template(fold(events[:1]).template)
    roles = {role.key: role for role in template.roles}
    steps: list[Step] = []
    for index, event in enumerate(events):
        if event["kind"] not in FIELD_FILLED | {EventKind.DECLINED}:
            continue
        before = fold(events[:index])
        started = datetime.fromisoformat(before.step_started_at or before.created_at)
        data = json.loads(event["data"])
        if event["kind"] == EventKind.DECLINED:  # the decliner's first unsigned field
            member = next((m for m in before.members if m.party == data["party"]
                           and m.field not in before.signed), None)
        else:
            member = next((m for m in before.members if m.field == data["field"]), None)
        if member is None:
            continue
        outcome = (EventKind.SIGNED if event["kind"] in SIGNATURES
                   else EventKind(event["kind"]))
        steps.append(Step(before.id, before.number, template.key, member.role, member.party,
                          depts.get(member.party, "?"), started,
                          datetime.fromisoformat(event["at"]),
                          due_time(roles[member.role], started), outcome, member.field))
    state = fold(events)
    for member in next_members(state):
        started = datetime.fromisoformat(state.step_started_at or state.created_at)
        steps.append(Step(state.id, state.number, template.key, member.role, member.party,
                          depts.get(member.party, "?"), started, None,
                          due_time(roles[member.role], started), "waiting", member.field))
    return steps


def period(settings: Settings, since_text: str, until_text: str
           ) -> tuple[datetime, datetime]:
    """Return the first and last instant of two ISO dates (inclusive, in the settings'
    zone unless they name one); BadInput if either is not a date or they are reversed."""
    since = _parse_day(since_text, settings.zone, False)
    until = _parse_day(until_text, settings.zone, True)
    if until < since:
        raise BadInput("结束日期早于开始日期", "--until is before --since")
    return since, until


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    position = (len(ordered) - 1) * fraction
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def review(settings: Settings, since_text: str, until_text: str,
           now: datetime | None = None) -> dict:
    """Return the review for documents created between two ISO dates (inclusive)."""
    since, until = period(settings, since_text, until_text)
    now = now or datetime.now(settings.zone)
    steps, rejected = collect_steps(settings, since, until)
    rows: list[ReviewRow] = []
    for scope, key_of in (("template", lambda s: s.template), ("party", lambda s: s.party),
                          ("department", lambda s: s.dept)):
        groups: dict[str, list[Step]] = defaultdict(list)
        for step in steps:
            groups[key_of(step)].append(step)
        for key, group in sorted(groups.items()):
            done = [s.waited(now) for s in group if s.ended is not None]
            rows.append(ReviewRow(
                scope=scope, key=key, steps=len(group),
                median_hours=round(statistics.median(done), 2) if done else None,
                p90_hours=round(_percentile(done, 0.9), 2) if done else None,
                overdue=sum(s.overdue(now) for s in group),
                deemed_consent=sum(s.outcome == EventKind.DEEMED_CONSENT for s in group),
                declines=sum(s.outcome == EventKind.DECLINED for s in group),
                rejected_uploads=sum(rejected.get(p, 0) for p in {s.party for s in group})
                if scope == "party" else 0))
    longest = sorted(steps, key=lambda s: s.waited(now), reverse=True)[:10]
    return {
        "since": since.isoformat(), "until": until.isoformat(),
        "documents": len({s.document for s in steps}),
        "rows": [row.__dict__ for row in rows],
        "longest_waits": [{"document": s.document, "number": s.number, "role": s.role,
                           "party": s.party, "dept": s.dept, "hours": round(s.waited(now), 2),
                           "outcome": s.outcome} for s in longest],
    }


def review_csv(report: dict) -> str:
    """Return the review rows as CSV text."""
    out = io.StringIO()
    writer = csv.writer(out)
    columns = ["scope", "key", "steps", "median_hours", "p90_hours", "overdue",
               "deemed_consent", "declines", "rejected_uploads"]
    writer.writerow(columns)
    for row in report["rows"]:
        writer.writerow([row[c] if row[c] is not None else "" for c in columns])
    return out.getvalue()


def review_chart(report: dict) -> bytes:
    """Return a PNG bar chart: median and p90 turnaround per department, in hours."""
    from PIL import Image, ImageDraw, ImageFont

    rows = [r for r in report["rows"] if r["scope"] == "department"]
    width, bar_area = 900, max(1, len(rows)) * 60
    height = 140 + bar_area
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.truetype(str(CJK_FONT), 18, index=CJK_SC_INDEX)
    small = ImageFont.truetype(str(CJK_FONT), 14, index=CJK_SC_INDEX)
    draw.text((20, 15), "各部门签署周转时间（小时）/ Turnaround per department (hours)",
              fill="black", font=font)
    draw.text((20, 45), f"{report['since'][:10]} – {report['until'][:10]} · "
              f"{report['documents']} documents", fill="#555555", font=small)
    longest = max([r["p90_hours"] or 0 for r in rows] + [1.0])
    left, right = 180, width - 120
    for index, row in enumerate(rows):
        top = 90 + index * 60
        draw.text((20, top + 8), row["key"], fill="black", font=font)
        for offset, value, colour in ((0, row["median_hours"], "#3b6fb6"),
                                      (22, row["p90_hours"], "#a9c1e6")):
            length = int((right - left) * (value or 0) / longest)
            draw.rectangle([left, top + offset, left + max(length, 1), top + offset + 18],
                           fill=colour)
            label = "—" if value is None else f"{value:g} h"
            draw.text((left + length + 8, top + offset), label, fill="black", font=small)
        if row["overdue"]:
            draw.text((right + 10, top + 8), f"逾期 {row['overdue']}", fill="#c0392b",
                      font=small)
    draw.text((left, height - 35), "深色 = 中位数 median，浅色 = p90", fill="#555555",
              font=small)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()
