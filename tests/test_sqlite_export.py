"""The audit database (export --sqlite, and audit.db inside every bundle): reopened with
sqlite-utils, rows and chain checked against the ledger, review views against the report,
and a tampered row refused by verify-bundle."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import zipfile
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlite_utils

from pipeline.audit.bundle import write_bundle
from pipeline.audit.review import review
from pipeline.audit.sqlite_export import (
    AUDIT_DB,
    DocumentRecord,
    database_problems,
    export_sqlite,
    write_audit_database,
)
from pipeline.config import Settings
from pipeline.documents.close import close_document
from pipeline.documents.create import create_document
from pipeline.documents.followup import follow_up
from pipeline.documents.repository import document_status
from pipeline.documents.sign import sign_document
from pipeline.documents.steps import decline_document
from pipeline.people.parties import list_parties
from pipeline.record import database, ledger
from tests.support.cli import COUNTERSIGN
from tests.support.data import initialised
from tests.support.forms import example
from tests.support.mail import smtp_server

README = Path(__file__).resolve().parent.parent / "README.md"
TABLES = {"export_info", "parties", "documents", "events", "signatures", "deadlines"}


def cli(settings: Settings, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([COUNTERSIGN, "--data-dir", str(settings.data_dir), *args],
                          capture_output=True, text=True, timeout=300)


def readme_query() -> str:
    """Return the example SQL query the README shows for the review questions."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Audit data"):]
    return re.search(r"```sql\n(.*?)```", section, re.S).group(1)


# --- fast: the writer and the bundle check on a ledger made without LibreOffice -----------


def _ledger_events(tmp_path: Path) -> list[dict]:
    """Return a declined requirement letter's events, appended to a real ledger (no PDF:
    nothing was signed, so there is nothing to verify)."""
    members = [{"role": "requester", "order": 1, "index": None, "party": "zhangwei",
                "field": "requester"},
               {"role": "receiver", "order": 2, "index": None, "party": "lina",
                "field": "receiver"}]
    document = "doc-fast"
    events = [
        ledger.new_event(document, "created", "zhangwei", {
            "template": "requirement_confirmation", "template_version": 1,
            "number": "2024-市场-001", "form": example("requirement_confirmation"),
            "members": members}),
        ledger.new_event(document, "prepared", "cli", {"fields": ["requester", "receiver"]}),
        ledger.new_event(document, "declined", "zhangwei",
                         {"party": "zhangwei", "reason": "预算不足"}),
    ]
    with database.connection(tmp_path / "ledger.db") as conn:
        ledger.append(conn, events)
        return database.select_events(conn)


def test_database_rows_chain_and_a_tampered_row(tmp_path):
    events = _ledger_events(tmp_path)
    path = tmp_path / AUDIT_DB
    now = datetime.now(UTC) + timedelta(days=3)
    summary = write_audit_database(path, [DocumentRecord(tuple(events))], [], now,
                                   source="bundle", selection="doc-fast")
    assert summary["tables"] == {"documents": 1, "events": 3, "signatures": 0,
                                 "parties": 1, "deadlines": 1}
    db = sqlite_utils.Database(path)
    assert TABLES <= set(db.table_names())
    assert [dict(row) for row in db["events"].rows_where(order_by="seq")] == events
    document = db["documents"].get("doc-fast")
    assert document["status"] == "declined" and document["decline_reason"] == "预算不足"
    assert [row["outcome"] for row in db["deadlines"].rows] == ["declined"]
    assert db["parties"].get("zhangwei")["dept"] == "?"  # unknown here: a row all the same
    db.close()
    assert database_problems(path.read_bytes(), events) == []

    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE events SET actor = 'mallory' WHERE seq = 3")
    conn.close()
    problems = database_problems(path.read_bytes(), events)
    assert len(problems) == 1 and "event 3" in problems[0] and "altered" in problems[0]
    assert "\n" not in problems[0]

    with sqlite3.connect(path) as conn:  # a row removed, the rest untouched
        conn.execute("UPDATE events SET actor = 'zhangwei' WHERE seq = 3")
        conn.execute("DELETE FROM events WHERE seq = 2")
    conn.close()
    assert database_problems(path.read_bytes(), events) == [
        f"审计数据库缺少事件 [2] / {AUDIT_DB} lacks the ledger extract's events [2]"]
    assert "cannot be read" in database_problems(b"not a database", events)[0]


# --- slow: a real lifecycle ------------------------------------------------------------------


@pytest.fixture(scope="module")
def lifecycle(tmp_path_factory, pool):
    """A data folder holding: a letter reminded, signed and closed; a letter declined; a
    progress sync whose supporter consented by silence; an issue escalated, still waiting.
    Returns settings, the document ids, and the instant the follow-up ran at."""
    with smtp_server() as (inbox, port):
        return _lifecycle(initialised(tmp_path_factory.mktemp("export") / "data",
                                      smtp_port=port), inbox, pool)


def _lifecycle(settings: Settings, inbox, pool) -> tuple[Settings, dict[str, str], datetime]:
    letter = create_document(settings, "requirement_confirmation",
                             example("requirement_confirmation"),
                             [("requester", "zhangwei"), ("receiver", "lina")], pool).id
    sign_document(settings, letter, "zhangwei", "demo")
    due = datetime.fromisoformat(document_status(settings, letter).next[0].due)
    assert [a.kind for a in follow_up(settings, due - timedelta(hours=1))] == ["reminded"]
    assert "reminder" in inbox.subjects()[-1]
    sign_document(settings, letter, "lina", "demo")
    close_document(settings, letter, pool)

    form = {**example("requirement_confirmation"), "background": "测试拒签流程的需求背景"}
    declined = create_document(settings, "requirement_confirmation", form,
                               [("requester", "zhangwei"), ("receiver", "lina")], pool).id
    sign_document(settings, declined, "zhangwei", "demo")
    decline_document(settings, declined, "lina", "交付日期不现实")

    sync = create_document(settings, "progress_sync", example("progress_sync"),
                           [("responsible", "wangqiang"), ("supporter", "zhaomin")], pool).id
    sign_document(settings, sync, "wangqiang", "demo")
    issue = create_document(settings, "issue_tracking", example("issue_tracking"),
                            [("responsible", "wangqiang"), ("reporter", "liuyang")], pool).id
    far = datetime.now(settings.zone) + timedelta(days=10)
    assert sorted(a.kind for a in follow_up(settings, far)) == ["deemed-consent", "escalated"]
    return settings, {"letter": letter, "declined": declined, "sync": sync,
                      "issue": issue}, far


@pytest.mark.slow
def test_export_of_a_quarter_reopened_with_sqlite_utils(lifecycle, tmp_path):
    settings, docs, far = lifecycle
    today = datetime.now(settings.zone).date().isoformat()
    out = tmp_path / "audit.db"
    summary = export_sqlite(settings, out, since=today, until=today, now=far)
    assert summary["tables"]["documents"] == 4

    db = sqlite_utils.Database(out)
    assert TABLES <= set(db.table_names())
    assert {"review", "longest_waits"} <= set(db.view_names())
    # Rows: every event of the ledger, byte for byte; the chain links from the genesis.
    with database.connection(settings.database) as conn:
        live = database.select_events(conn)
    rows = [dict(row) for row in db["events"].rows_where(order_by="seq")]
    assert rows == live
    assert rows[0]["prev_hash"] == ledger.GENESIS
    for before, row in zip(rows, rows[1:], strict=False):
        assert row["prev_hash"] == before["hash"]
    assert all(ledger.event_hash(row) == row["hash"] for row in rows)

    # Foreign keys, indexes and full-text search.
    assert {(fk.column, fk.other_table) for fk in db["signatures"].foreign_keys} == {
        ("document_id", "documents"), ("party", "parties"), ("event_seq", "events")}
    assert {(fk.column, fk.other_table) for fk in db["deadlines"].foreign_keys} == {
        ("document_id", "documents"), ("party", "parties")}
    assert db.execute("PRAGMA foreign_key_check").fetchall() == []
    assert {tuple(index.columns) for index in db["events"].indexes} >= {
        ("document_id",), ("hash",), ("kind",)}
    assert [row["id"] for row in db["documents"].search("拒签流程")] == [docs["declined"]]
    assert {row["id"] for row in db["documents"].search("兑换商品管理")} == {
        docs["letter"], docs["declined"]}

    # Signatures: the signer, the certificate the ledger recorded, the TSA time, the verdict.
    certificates = {p.id: p.certificate_sha256 for p in list_parties(settings)}
    letter = list(db["signatures"].rows_where("document_id = ?", [docs["letter"]],
                                              order_by="signed_at"))
    assert [(s["party"], s["signer"], s["indication"]) for s in letter] == [
        ("zhangwei", "张伟 / 市场部", "TOTAL_PASSED"), ("lina", "李娜 / 产品部", "TOTAL_PASSED")]
    for signature in letter:
        assert signature["certificate_sha256"] == certificates[signature["party"]]
        assert signature["certificate_matches"] == 1 and signature["timestamp"]
    assert [s["party"] for s in db["signatures"].rows_where(
        "document_id = ?", [docs["sync"]])] == ["wangqiang"]  # deemed consent is no signature

    # Deadlines: reminded, declined, deemed consent, escalated and still waiting.
    def step(document: str, field: str) -> dict:
        return next(db["deadlines"].rows_where("document_id = ? AND field = ?",
                                               [document, field]))

    assert step(docs["letter"], "receiver")["reminded_at"] is not None
    assert step(docs["letter"], "receiver")["outcome"] == "signed"
    assert step(docs["declined"], "receiver")["outcome"] == "declined"
    assert step(docs["sync"], "supporter-1")["deemed_consent"] == 1
    waiting = step(docs["issue"], "responsible")
    assert waiting["escalated_at"] and waiting["outcome"] == "waiting" and waiting["overdue"]
    assert db["documents"].get(docs["letter"])["status"] == "closed"

    # The review views give the report's figures.
    expected = review(settings, today, today, now=far)
    view = [dict(row) for row in db["review"].rows]
    assert [(r["scope"], r["key"], r["steps"], r["overdue"], r["deemed_consent"],
             r["declines"], r["rejected_uploads"]) for r in view] == [
        (r["scope"], r["key"], r["steps"], r["overdue"], r["deemed_consent"], r["declines"],
         r["rejected_uploads"]) for r in expected["rows"]]
    for got, want in zip(view, expected["rows"], strict=True):
        for key in ("median_hours", "p90_hours"):
            assert got[key] == pytest.approx(want[key], abs=0.011), (got, want)
    longest = next(db["longest_waits"].rows)
    assert longest["document"] == expected["longest_waits"][0]["document"] == docs["issue"]

    answer = db.execute(readme_query()).fetchall()
    print("\nREADME query:", *answer, sep="\n")
    by_dept = {row[0]: row for row in answer}
    assert by_dept["研发部"][3] == 1  # the escalated issue is overdue
    assert by_dept["市场部"][4] == 1  # zhaomin's silence counted as consent
    assert answer[0][0] == "研发部"   # the longest wait first
    db.close()


@pytest.mark.slow
def test_export_command(lifecycle, tmp_path):
    settings, docs, _ = lifecycle
    out = tmp_path / "two.db"
    result = cli(settings, "export", docs["letter"], docs["sync"], "--sqlite", str(out),
                 "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["tables"]["documents"] == 2 and summary["source"] == "ledger"
    db = sqlite_utils.Database(out)
    assert {row["id"] for row in db["documents"].rows} == {docs["letter"], docs["sync"]}
    db.close()
    for args, message in [
        (["--sqlite", str(out)], "give document ids, or both --since and --until"),
        (["nope", "--sqlite", str(out)], "unknown document 'nope'"),
        (["--since", "2024-13-01", "--until", "2024-12-31", "--sqlite", str(out)],
         "not an ISO date"),
        ([docs["letter"], "--out", "b.zip", "--sqlite", str(out)], "give --out BUNDLE or"),
        ([docs["letter"], docs["sync"], "--out", "b.zip"], "exactly one document"),
    ]:
        bad = cli(settings, "export", *args)
        assert bad.returncode == 2, (args, bad.stderr)
        assert message in bad.stderr and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    # A refused export leaves the earlier database as it was.
    assert sqlite_utils.Database(out)["documents"].count == 2


def _rebundle(settings: Settings, bundle: Path, out: Path, database_bytes: bytes | None):
    """Write ``bundle`` again with another audit.db (None: without one), the manifest
    re-signed by the system key: only the database's own check can then tell."""
    with zipfile.ZipFile(bundle) as archive:
        members = {name: archive.read(name) for name in archive.namelist()
                   if not name.startswith("manifest.")}
        manifest = json.loads(archive.read("manifest.json"))
    if database_bytes is None:
        del members[AUDIT_DB]
    else:
        members[AUDIT_DB] = database_bytes
    write_bundle(settings, manifest["document"], manifest["number"], members, out)


@pytest.mark.slow
def test_bundle_database_matches_the_extract_and_a_tampered_row_fails(lifecycle, tmp_path):
    settings, docs, _ = lifecycle
    bundle = tmp_path / "bundle.zip"
    assert cli(settings, "export", docs["letter"], "--out", str(bundle)).returncode == 0
    elsewhere = replace(settings, data_dir=tmp_path / "nowhere")
    ok = cli(elsewhere, "verify-bundle", str(bundle), "--json")
    assert ok.returncode == 0, ok.stdout

    with zipfile.ZipFile(bundle) as archive:
        extract = json.loads(archive.read("ledger.json"))["ledger"]
        (tmp_path / AUDIT_DB).write_bytes(archive.read(AUDIT_DB))
    db = sqlite_utils.Database(tmp_path / AUDIT_DB)
    assert [dict(row) for row in db["events"].rows_where(order_by="seq")] == extract
    assert [s["indication"] for s in db["signatures"].rows] == ["TOTAL_PASSED"] * 2
    assert db["documents"].get(docs["letter"])["status"] == "closed"
    signed = next(db["events"].rows_where("kind = 'signed'", order_by="seq"))["seq"]
    db.close()

    with sqlite3.connect(tmp_path / AUDIT_DB) as conn:
        conn.execute("UPDATE events SET actor = 'mallory' WHERE seq = ?", (signed,))
    conn.close()
    tampered = (tmp_path / AUDIT_DB).read_bytes()
    resigned = tmp_path / "resigned.zip"
    _rebundle(settings, bundle, resigned, tampered)
    result = cli(elsewhere, "verify-bundle", str(resigned), "--json")
    assert result.returncode == 1
    assert json.loads(result.stdout)["problems"] == [
        f"审计数据库的事件 {signed} 被改动 / event {signed} in {AUDIT_DB} was altered: its "
        "hash does not match its content"]
    text = cli(elsewhere, "verify-bundle", str(resigned))
    assert text.returncode == 1 and f"event {signed} in {AUDIT_DB} was altered" in text.stdout

    # Tampered in place, without the system key: the manifest fails too.
    with zipfile.ZipFile(bundle) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    members[AUDIT_DB] = tampered
    plain = tmp_path / "plain.zip"
    with zipfile.ZipFile(plain, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    problems = json.loads(cli(elsewhere, "verify-bundle", str(plain), "--json").stdout)[
        "problems"]
    assert any(f"{AUDIT_DB} was altered (its hash" in p for p in problems)
    assert any(f"event {signed} in {AUDIT_DB} was altered" in p for p in problems)

    # A bundle written before audit.db existed still verifies; one whose manifest lists it
    # but lacks the file does not.
    older = tmp_path / "older.zip"
    _rebundle(settings, bundle, older, None)
    assert cli(elsewhere, "verify-bundle", str(older)).returncode == 0
    with zipfile.ZipFile(bundle) as archive:
        members = {n: archive.read(n) for n in archive.namelist() if n != AUDIT_DB}
    with zipfile.ZipFile(tmp_path / "lacking.zip", "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    lacking = cli(elsewhere, "verify-bundle", str(tmp_path / "lacking.zip"), "--json")
    assert lacking.returncode == 1
    assert f"{AUDIT_DB} is missing (the manifest lists it)" in lacking.stdout
