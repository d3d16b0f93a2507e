"""The paths that used to dead-end, each taken to its end with real LibreOffice, real keys
from the local CA and the real ledger: an issue resolved before it is signed, a declined
document revised into its next version, and the one rule for void and for who may act."""

from __future__ import annotations

import json
import subprocess

import pytest

from pipeline.config import Settings
from pipeline.documents.close import close_document
from pipeline.documents.create import create_document
from pipeline.documents.repository import (
    blocking_documents,
    document_events,
    document_status,
    download_revision,
    verify_ledger,
)
from pipeline.documents.resolve import resolve_document
from pipeline.documents.revise import revise_document
from pipeline.documents.sign import sign_document
from pipeline.documents.steps import (
    add_progress_entry,
    decline_document,
    mark_action_item_done,
    void_document,
)
from pipeline.errors import (
    BadInput,
    ClosureRefused,
    NotPermitted,
    NotYourTurn,
    ResolutionRequired,
    ValidationFailed,
)
from tests.support.cli import COUNTERSIGN
from tests.support.forms import example
from tests.support.pdf import pdf_text, squash

pytestmark = pytest.mark.slow


def open_ids(settings: Settings) -> set[str]:
    return {report.id for report in blocking_documents(settings)}


def unresolved_issue(settings: Settings, pool) -> str:
    form = example("issue_tracking")
    form["result_confirmation"] = ""
    return create_document(settings, "issue_tracking", form,
                           [("responsible", "wangqiang"), ("reporter", "liuyang")], pool,
                           actor="liuyang").id


def test_an_issue_is_resolved_by_the_responsible_department_then_signed_and_closed(
        settings, pool):
    doc = unresolved_issue(settings, pool)
    created = document_status(settings, doc)
    assert created.next[0].needs == ["result_confirmation"]
    assert any("填写「结果确认」并签字" in reason for reason in created.blocking)

    with pytest.raises(ResolutionRequired, match="must record the Result confirmation"):
        sign_document(settings, doc, "wangqiang", "demo")
    with pytest.raises(ClosureRefused, match="Result confirmation is still empty"):
        close_document(settings, doc, pool)
    with pytest.raises(NotYourTurn, match="not liuyang's turn"):
        sign_document(settings, doc, "liuyang", "demo")
    with pytest.raises(NotPermitted, match=r"only the Responsible department \(wangqiang\)"):
        resolve_document(settings, doc, "已解决", "liuyang", pool)
    with pytest.raises(BadInput, match="Result confirmation is empty"):
        resolve_document(settings, doc, "   ", "wangqiang", pool)
    assert document_status(settings, doc).revision == created.revision

    resolved = resolve_document(settings, doc, "已修复，支付响应时间缩短至2秒内", "wangqiang", pool)
    assert resolved.revision != created.revision
    assert resolved.next[0].needs == []
    assert "已修复，支付响应时间缩短至2秒内" in squash(pdf_text(download_revision(settings, doc)))
    event = document_events(settings, doc)[-1]
    assert event["kind"] == "resolved" and event["actor"] == "wangqiang"
    assert event["revision_before"] == created.revision
    assert event["revision_after"] == resolved.revision

    sign_document(settings, doc, "wangqiang", "demo")
    with pytest.raises(NotYourTurn, match="can no longer change"):
        resolve_document(settings, doc, "改口", "wangqiang", pool)
    sign_document(settings, doc, "liuyang", "demo")
    closed = close_document(settings, doc, pool)
    assert closed.status == "closed"
    assert "已修复，支付响应时间缩短至2秒内" in squash(pdf_text(download_revision(settings, doc)))
    assert verify_ledger(settings).ok


def test_an_administrator_may_resolve_and_progress_entries_stay_in_the_pdf(settings, pool):
    doc = unresolved_issue(settings, pool)
    add_progress_entry(settings, doc, "2024-05-24", "回归测试通过", "liuyang", pool)
    add_progress_entry(settings, doc, "2024-05-25", "灰度发布完成", "wangqiang", pool)
    resolve_document(settings, doc, "已上线", "admin:ops", pool, admin=True)
    text = squash(pdf_text(download_revision(settings, doc)))
    # Every entry rendered so far is still in the PDF after the next re-render.
    for expected in ("完成代码开发", "回归测试通过", "灰度发布完成", "已上线"):
        assert expected in text
    assert sign_document(settings, doc, "wangqiang", "demo").signed


def test_a_declined_document_is_revised_into_its_next_version(settings, pool):
    form = example("requirement_confirmation")
    first = create_document(settings, "requirement_confirmation", form,
                            [("requester", "zhangwei"), ("receiver", "lina")], pool,
                            actor="zhangwei")
    doc = first.id
    sign_document(settings, doc, "zhangwei", "demo")
    declined = decline_document(settings, doc, "lina", "交付时间不可行")
    assert declined.status == "declined" and declined.next == []
    assert not any("waiting for" in reason for reason in declined.blocking)
    assert any("revise" in reason for reason in declined.blocking)

    with pytest.raises(NotPermitted, match="only the creator"):
        revise_document(settings, doc, form, "lina", pool)
    with pytest.raises(ValidationFailed):
        revise_document(settings, doc, {**form, "priority": "最高"}, "zhangwei", pool)

    changed = {**form, "expected_delivery": "2024-07-31", "receiver_assessment": "可在7月交付"}
    second = revise_document(settings, doc, changed, "zhangwei", pool)
    assert second.number == f"{first.number} 第2版"
    assert second.supersedes == doc and second.status == "awaiting_signatures"
    assert [n.party for n in second.next] == ["zhangwei"]
    assert second.creator == "zhangwei"
    old = document_status(settings, doc)
    assert old.status == "superseded" and old.superseded_by == second.id
    assert open_ids(settings) == {second.id}
    text = squash(pdf_text(download_revision(settings, second.id)))
    assert f"{first.number}第2版" in text and "可在7月交付" in text
    with pytest.raises(NotYourTurn, match=f"superseded by {second.id}"):
        revise_document(settings, doc, changed, "zhangwei", pool)
    with pytest.raises(NotYourTurn, match="cannot be voided"):
        void_document(settings, doc, "zhangwei", "不再需要")

    # A second round: declined again, revised by an administrator into 第3版, then agreed.
    sign_document(settings, second.id, "zhangwei", "demo")
    decline_document(settings, second.id, "lina", "资源仍不足")
    third = revise_document(settings, second.id, changed, "admin:ops", pool, admin=True)
    assert third.number == f"{first.number} 第3版"
    sign_document(settings, third.id, "zhangwei", "demo")
    sign_document(settings, third.id, "lina", "demo")
    assert close_document(settings, third.id, pool).status == "closed"
    assert verify_ledger(settings).ok


def test_void_has_one_rule_and_actors_must_belong_to_the_document(settings, pool):
    minutes = create_document(settings, "meeting_minutes", example("meeting_minutes"),
                              [("host", "lina"), ("attendee", "wangqiang"),
                               ("attendee", "zhaomin")], pool, actor="zhangwei").id
    with pytest.raises(NotPermitted, match="neither a party"):
        mark_action_item_done(settings, minutes, 1, "somebody")
    with pytest.raises(NotPermitted, match="neither a party"):
        mark_action_item_done(settings, minutes, 1, "liuyang")
    assert mark_action_item_done(settings, minutes, 1, "wangqiang").action_items_done == [1]
    assert mark_action_item_done(settings, minutes, 2, "admin:ops",
                                 admin=True).action_items_done == [1, 2]

    with pytest.raises(NotPermitted, match="only the creator"):
        void_document(settings, minutes, "lina", "开错了")
    with pytest.raises(BadInput, match="give a reason"):
        void_document(settings, minutes, "zhangwei", " ")
    voided = void_document(settings, minutes, "zhangwei", "会议改期，纪要作废")
    assert voided.status == "voided" and minutes not in open_ids(settings)
    with pytest.raises(NotYourTurn, match="cannot be voided"):
        void_document(settings, minutes, "admin:ops", "再次作废", admin=True)

    issue = unresolved_issue(settings, pool)
    with pytest.raises(NotPermitted, match="neither a party"):
        add_progress_entry(settings, issue, "2024-05-24", "编造的进展", "zhaomin", pool)
    assert void_document(settings, issue, "admin:ops", "重复登记", admin=True).status == \
        "voided"


def test_a_closed_document_cannot_be_voided(settings, pool):
    doc = create_document(settings, "requirement_confirmation",
                          example("requirement_confirmation"),
                          [("requester", "zhangwei"), ("receiver", "lina")], pool).id
    sign_document(settings, doc, "zhangwei", "demo")
    sign_document(settings, doc, "lina", "demo")
    close_document(settings, doc, pool)
    with pytest.raises(NotYourTurn, match="closed; it cannot be voided"):
        void_document(settings, doc, "admin:ops", "事后作废", admin=True)


def run(settings: Settings, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([COUNTERSIGN, "--data-dir", str(settings.data_dir), *args],
                          capture_output=True, text=True, timeout=300,
                          env={"PATH": "/usr/bin:/bin", "COUNTERSIGN_PASSPHRASE": "demo",
                               "HOME": str(settings.data_dir)})


def test_the_command_line_resolves_revises_and_voids(settings, tmp_path):
    issue = tmp_path / "issue.json"
    issue.write_text(json.dumps({**example("issue_tracking"), "result_confirmation": ""},
                                ensure_ascii=False), encoding="utf-8")
    doc = run(settings, "create", "issue_tracking", "--data", str(issue), "--creator",
              "liuyang", "--party", "responsible=wangqiang", "--party", "reporter=liuyang")
    doc_id = doc.stdout.strip()
    assert doc.returncode == 0 and doc_id.startswith("doc-"), doc.stderr

    refused = run(settings, "sign", doc_id, "--as", "wangqiang")
    assert refused.returncode == 2
    assert refused.stderr.strip().count("\n") == 0 and "resolve" in refused.stderr
    nobody = run(settings, "resolve", doc_id, "--text", "已修复", "--as", "nobody")
    assert nobody.returncode == 2 and "unknown party" in nobody.stderr.lower()
    both = run(settings, "resolve", doc_id, "--text", "已修复", "--as", "wangqiang", "--admin")
    assert both.returncode == 2 and "--as PARTY_ID or --admin" in both.stderr
    resolved = run(settings, "resolve", doc_id, "--text", "已修复", "--as", "wangqiang",
                   "--json")
    assert resolved.returncode == 0, resolved.stderr
    assert json.loads(resolved.stdout)["next"][0]["needs"] == []
    assert run(settings, "sign", doc_id, "--as", "wangqiang").returncode == 0

    declined = run(settings, "decline", doc_id, "--as", "liuyang", "--reason", "未验证")
    assert declined.returncode == 0, declined.stderr
    revised = run(settings, "revise", doc_id, "--data", str(issue), "--as", "liuyang", "--json")
    assert revised.returncode == 0, revised.stderr
    second = json.loads(revised.stdout)
    assert second["number"].endswith(" 第2版") and second["supersedes"] == doc_id
    status = run(settings, "status", doc_id)
    assert "superseded" in status.stdout and second["id"] in status.stdout

    not_creator = run(settings, "void", second["id"], "--as", "wangqiang", "--reason", "x")
    assert not_creator.returncode == 2 and "only the creator" in not_creator.stderr
    voided = run(settings, "void", second["id"], "--admin", "--reason", "改由线下处理", "--json")
    assert voided.returncode == 0 and json.loads(voided.stdout)["status"] == "voided"
    assert json.loads(voided.stdout)["voided"]["actor"] == "admin:cli"
