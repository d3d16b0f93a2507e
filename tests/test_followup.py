"""Reminders, escalation and deemed consent over a real SMTP server (aiosmtpd) on loopback;
decline, void, reassign, progress entries and action items."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from pipeline.config import Settings
from pipeline.documents.close import close_document
from pipeline.documents.create import create_document
from pipeline.documents.followup import follow_up
from pipeline.documents.notify import undelivered_mail
from pipeline.documents.repository import document_status, download_revision
from pipeline.documents.sign import sign_document
from pipeline.documents.steps import (
    add_progress_entry,
    decline_document,
    mark_action_item_done,
    reassign_step,
    void_document,
)
from pipeline.errors import BadInput, ClosureRefused, NotPermitted, NotYourTurn
from pipeline.people.parties import add_party
from pipeline.signing_setup import signing_environment
from signing.validation import validate_pdf
from tests.support.data import initialised
from tests.support.forms import example
from tests.support.mail import body
from tests.support.net import free_port
from tests.support.pdf import pdf_text

pytestmark = pytest.mark.slow  # every document here is rendered by LibreOffice


@pytest.fixture
def settings(tmp_path, smtp) -> Settings:
    _, port = smtp
    settings = initialised(tmp_path / "data", smtp_port=port,
                           base_url="https://sign.example.com")
    add_party(settings, name="钱总", dept="市场部", email="qian@example.com")
    add_party(settings, name="周敏", dept="产品部", email="zhoumin@example.com",
              superior_email="boss@example.com", issue_cert=True, passphrase="demo")
    return settings


def test_reminder_then_escalation_each_once(settings, smtp, pool):
    inbox, _ = smtp
    doc = create_document(settings, "requirement_confirmation",
                          example("requirement_confirmation"),
                          [("requester", "zhangwei"), ("receiver", "zhoumin")], pool)
    # The document goes to each party when its turn comes ("sent"), once.
    assert [rcpts for rcpts, _ in inbox.messages] == [("zhangwei@example.com",)]
    sign_document(settings, doc.id, "zhangwei", "demo")
    assert [rcpts for rcpts, _ in inbox.messages][1:] == [("zhoumin@example.com",)]
    assert "please sign" in inbox.subjects()[1]
    due = datetime.fromisoformat(document_status(settings, doc.id).next[0].due)

    assert follow_up(settings, due - timedelta(hours=10)) == []   # too early
    first = follow_up(settings, due - timedelta(hours=1))
    assert [(a.kind, a.party) for a in first] == [("reminded", "zhoumin")]
    assert follow_up(settings, due - timedelta(minutes=30)) == []  # never twice
    rcpts, message = inbox.messages[2]
    assert rcpts == ("zhoumin@example.com",)
    assert f"https://sign.example.com/documents/{doc.id}" in body(message)
    assert doc.number in inbox.subjects()[2]

    late = follow_up(settings, due + timedelta(hours=1))
    assert [(a.kind, a.to) for a in late] == [("escalated", ("boss@example.com",))]
    assert follow_up(settings, due + timedelta(hours=2)) == []
    assert len(inbox.messages) == 4 and inbox.messages[3][0] == ("boss@example.com",)
    kinds = [e for e in document_status(settings, doc.id).signed]
    assert len(kinds) == 1  # reminders and escalations are never signatures


def test_deemed_consent_is_recorded_never_as_a_signature(settings, smtp, pool):
    inbox, _ = smtp
    doc = create_document(settings, "progress_sync", example("progress_sync"),
                          [("responsible", "wangqiang"), ("supporter", "zhaomin")], pool)
    sign_document(settings, doc.id, "wangqiang", "demo")
    status = document_status(settings, doc.id)
    due = datetime.fromisoformat(status.next[0].due)
    actions = follow_up(settings, due + timedelta(minutes=1))
    assert [(a.kind, a.party) for a in actions] == [("deemed-consent", "zhaomin")]
    after = document_status(settings, doc.id)
    assert after.status == "completed"
    supporter = next(s for s in after.signed if s.party == "zhaomin")
    assert supporter.deemed_consent is True and supporter.certificate_sha256 is None
    assert "deemed consent" in inbox.subjects()[-1]
    assert follow_up(settings, due + timedelta(hours=5)) == []
    closed = close_document(settings, doc.id, pool)
    assert closed.status == "closed"
    # The PDF holds one signature: the deemed consent is in the ledger, not forged in the PDF.
    env = signing_environment(settings)
    report = validate_pdf(download_revision(settings, doc.id), env.trust.offline(),
                          offline=True)
    assert report.valid and [s.field for s in report.signatures] == ["responsible"]


def test_issue_resolution_deadline_is_three_working_days(settings, pool):
    doc = create_document(settings, "issue_tracking", example("issue_tracking"),
                          [("responsible", "wangqiang"), ("reporter", "liuyang")], pool)
    step = doc.next[0]
    since, due = (datetime.fromisoformat(getattr(step, k)) for k in ("since", "due"))
    working_days = sum(1 for n in range(1, (due - since).days + 1)
                       if (since + timedelta(days=n)).weekday() < 5)
    assert working_days == 3 and due.time() == since.time()


def test_decline_blocks_and_notifies_creator_and_earlier_signers(settings, smtp, pool):
    inbox, _ = smtp
    doc = create_document(settings, "requirement_confirmation",
                          example("requirement_confirmation"),
                          [("requester", "zhangwei"), ("receiver", "lina")], pool,
                          actor="qian")
    sign_document(settings, doc.id, "zhangwei", "demo")
    with pytest.raises(BadInput, match="give a reason"):
        decline_document(settings, doc.id, "lina", "  ")
    declined = decline_document(settings, doc.id, "lina", "交付时间不可行")
    assert declined.status == "declined"
    assert any("declined by lina" in b and "交付时间不可行" in b for b in declined.blocking)
    rcpts, message = inbox.messages[-1]
    assert set(rcpts) == {"qian@example.com", "zhangwei@example.com"}
    assert "交付时间不可行" in body(message)
    with pytest.raises(NotYourTurn):
        sign_document(settings, doc.id, "lina", "demo")
    with pytest.raises(ClosureRefused, match="declined"):
        close_document(settings, doc.id, pool)


def test_void_by_the_creator_only(settings, pool):
    doc = create_document(settings, "requirement_confirmation",
                          example("requirement_confirmation"),
                          [("requester", "zhangwei"), ("receiver", "lina")], pool,
                          actor="qian")
    with pytest.raises(NotPermitted, match="only the creator"):
        void_document(settings, doc.id, "lina", "不需要了")
    voided = void_document(settings, doc.id, "qian", "需求取消")
    assert voided.status == "voided" and voided.next == []


def test_reassign_within_the_department(settings, pool):
    doc = create_document(settings, "requirement_confirmation",
                          example("requirement_confirmation"),
                          [("requester", "zhangwei"), ("receiver", "lina")], pool)
    with pytest.raises(BadInput, match="same department"):
        reassign_step(settings, doc.id, "requester", "lina", "admin:ops", "出差", admin=True)
    moved = reassign_step(settings, doc.id, "requester", "zhaomin", "zhangwei", "张伟出差")
    assert moved.next[0].party == "zhaomin"
    with pytest.raises(NotYourTurn):
        sign_document(settings, doc.id, "zhangwei", "demo")
    signed = sign_document(settings, doc.id, "zhaomin", "demo")
    assert signed.signed[0].party == "zhaomin"


def test_progress_entries_rerender_before_signing_and_live_in_the_ledger_after(settings, pool):
    form = example("issue_tracking")
    doc = create_document(settings, "issue_tracking", form,
                          [("responsible", "wangqiang"), ("reporter", "liuyang")], pool).id
    before = add_progress_entry(settings, doc, "2024-05-24", "回归测试通过", "wangqiang", pool)
    assert "回归测试通过" in pdf_text(download_revision(settings, doc))
    assert before.progress[0]["text"] == "回归测试通过"
    sign_document(settings, doc, "wangqiang", "demo")
    head = document_status(settings, doc).revision
    after = add_progress_entry(settings, doc, "2024-05-25", "已上线", "wangqiang", pool)
    assert after.revision == head  # the signed PDF is never touched
    assert [p["text"] for p in after.progress] == ["回归测试通过", "已上线"]
    with pytest.raises(BadInput):
        add_progress_entry(settings, doc, "tomorrow", "x", "wangqiang", pool)


def test_action_items_done_unblock_minutes(settings, pool):
    doc = create_document(settings, "meeting_minutes", example("meeting_minutes"),
                          [("host", "zhangwei"), ("attendee", "lina")], pool).id
    status = document_status(settings, doc)
    assert sum("action item" in b for b in status.blocking) == 2
    assert any("OVERDUE" in b for b in status.blocking)  # due 2024-05-22, long past
    mark_action_item_done(settings, doc, 1, "lina")
    with pytest.raises(BadInput, match="already done"):
        mark_action_item_done(settings, doc, 1, "lina")
    with pytest.raises(BadInput, match="must be 1..2"):
        mark_action_item_done(settings, doc, 3, "lina")
    mark_action_item_done(settings, doc, 2, "zhangwei")
    sign_document(settings, doc, "zhangwei", "demo")
    done = sign_document(settings, doc, "lina", "demo")
    assert done.blocking == [] and done.status == "completed"


def test_unreachable_mail_relay_queues_and_delivers_later(settings, smtp, pool):
    inbox, _ = smtp
    broken = replace(settings, smtp_port=free_port())
    doc = create_document(broken, "requirement_confirmation",
                          example("requirement_confirmation"),
                          [("requester", "zhangwei"), ("receiver", "lina")], pool,
                          important=True)
    # The relay is down: the step committed all the same, its mail waits in the outbox.
    assert doc.status == "awaiting_signatures" and inbox.messages == []
    # What the admins' warning on the pages shows: mail every attempt failed to deliver.
    (failing,) = undelivered_mail(broken, older_than=timedelta(0))
    assert failing.document == doc.id and "zhangwei@example.com" in failing.to
    assert undelivered_mail(broken) == []  # not yet five minutes old
    due = datetime.fromisoformat(doc.next[0].due)
    actions = follow_up(broken, due - timedelta(hours=1))
    assert [a.kind for a in actions] == ["reminded", "mail-failed", "mail-failed"]
    assert "could not send mail" in actions[-1].detail
    # With the relay back, the next pass delivers both, in order; nothing is recorded twice.
    assert follow_up(settings, due - timedelta(minutes=50)) == []
    assert [rcpts for rcpts, _ in inbox.messages] == [("zhangwei@example.com",)] * 2
    assert "please sign" in inbox.subjects()[0] and "reminder" in inbox.subjects()[1]
    assert follow_up(settings, due - timedelta(minutes=40)) == []
    assert len(inbox.messages) == 2
    assert undelivered_mail(settings, older_than=timedelta(0)) == []


def test_important_documents_copy_the_superior(settings, smtp, pool):
    inbox, _ = smtp
    create_document(settings, "requirement_confirmation", example("requirement_confirmation"),
                    [("requester", "zhoumin"), ("receiver", "lina")], pool, important=True)
    assert inbox.messages[0][0] == ("zhoumin@example.com", "boss@example.com")


def test_signing_on_a_stale_revision_is_a_conflict(settings, pool):
    from pipeline.errors import Conflict

    doc = create_document(settings, "progress_sync", example("progress_sync") | {
        "support_requests": [{"dept": "市场部", "content": "a", "due": "2024-05-25"},
                             {"dept": "产品部", "content": "b", "due": "2024-05-25"}]},
        [("responsible", "wangqiang"), ("supporter", "zhaomin"), ("supporter", "lina")], pool)
    seen = sign_document(settings, doc.id, "wangqiang", "demo").revision
    sign_document(settings, doc.id, "lina", "demo", expected_revision=seen)
    with pytest.raises(Conflict, match="moved on"):
        sign_document(settings, doc.id, "zhaomin", "demo", expected_revision=seen)
    assert len(document_status(settings, doc.id).signed) == 2
