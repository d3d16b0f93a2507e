"""A document's state folded from its ledger events, and the rules read off it — who is
next and since when, deadlines, what blocks closure — on events written by hand: no
rendering, no signing."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from pipeline.documents.state import (
    blocking,
    fold,
    involves,
    next_due,
    next_members,
    state_from_json,
    state_to_json,
    status_of,
)
from pipeline.documents.status import status_report
from pipeline.forms.manifest import get_template
from tests.support.data import initialised
from tests.support.events import at, created, event, signed
from tests.support.forms import example

SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    return initialised(tmp_path_factory.mktemp("state") / "data")


def progress_sync(settings, form: dict | None = None) -> list[dict]:
    """A progress sync: wangqiang responsible, then zhaomin and lina as a parallel group."""
    if form is None:
        form = example("progress_sync")
        form["support_requests"].append({"dept": "产品部", "content": "评审",
                                         "due": "2024-05-26"})
    return created(settings, "d1", "progress_sync", [
        ("responsible", "wangqiang"), ("supporter", "zhaomin"), ("supporter", "lina")],
        form=form)


def test_a_parallel_group_opens_when_the_order_before_it_is_done(settings):
    events = progress_sync(settings)
    state = fold(events)
    assert status_of(state) == "awaiting_signatures"
    assert [m.field for m in next_members(state)] == ["responsible"]
    assert state.step_started_at == at(0) and state.head_revision == "prepared"
    responsible, first, second = state.members

    events.append(signed("d1", responsible, hours=2))
    state = fold(events)
    assert [(m.field, m.party) for m in next_members(state)] == [
        ("supporter-1", "zhaomin"), ("supporter-2", "lina")]
    assert state.step_started_at == at(2)  # the group's deadline runs from here

    events.append(signed("d1", second, hours=3))  # the second member first
    state = fold(events)
    assert [m.field for m in next_members(state)] == ["supporter-1"]
    assert state.step_started_at == at(2)  # a group's step lasts until all have answered
    assert state.head_revision == "after-supporter-2"

    events.append(signed("d1", first, hours=30, kind="deemed-consent"))
    state = fold(events)
    assert status_of(state) == "completed" and next_members(state) == []
    consent = state.signed["supporter-1"]
    assert consent.deemed and consent.certificate_sha256 is None and consent.at == at(30)
    assert state.head_revision == "after-supporter-2"  # deemed consent changes no PDF
    assert blocking(state, get_template("progress_sync")) == []


def test_status_names_when_and_until_when_in_the_deployments_zone(settings):
    events = progress_sync(settings)
    events.append(signed("d1", fold(events).members[0], hours=2))
    report = status_report(fold(events), get_template("progress_sync"), SHANGHAI)
    assert [(n.party, n.since, n.due) for n in report.next] == [
        ("zhaomin", "2024-05-20T11:00:00+08:00", "2024-05-21T11:00:00+08:00"),
        ("lina", "2024-05-20T11:00:00+08:00", "2024-05-21T11:00:00+08:00")]
    assert [(s.party, s.signed_at) for s in report.signed] == [
        ("wangqiang", "2024-05-20T11:00:00+08:00")]
    assert report.blocking == [
        "等待支持部门 zhaomin 签字 / waiting for Supporting department zhaomin to sign "
        "(supporter-1)",
        "等待支持部门 lina 签字 / waiting for Supporting department lina to sign "
        "(supporter-2)"]


def test_issue_resolution_is_due_three_working_days_later_skipping_the_weekend(settings):
    # Created on Thursday 2024-05-23 at 17:00 in Shanghai.
    events = created(settings, "d2", "issue_tracking",
                     [("responsible", "wangqiang"), ("reporter", "liuyang")], hours=80)
    state = fold(events)
    assert datetime.fromisoformat(state.created_at).astimezone(SHANGHAI).isoformat() == \
        "2024-05-23T17:00:00+08:00"
    assert next_due(state, get_template("issue_tracking")) == "2024-05-28T09:00:00+00:00"
    # The reporter's acceptance is a 24-hour step from the responsible's signature.
    events.append(signed("d2", state.members[0], hours=90))
    assert next_due(fold(events), get_template("issue_tracking")) == at(114)


def test_an_issue_cannot_close_until_its_result_is_confirmed(settings):
    template = get_template("issue_tracking")
    form = example("issue_tracking") | {"result_confirmation": ""}
    events = created(settings, "d3", "issue_tracking",
                     [("responsible", "wangqiang"), ("reporter", "liuyang")], form=form)
    for index, member in enumerate(fold(events).members):
        events.append(signed("d3", member, hours=index + 1))
    state = fold(events)
    assert status_of(state) == "completed"
    assert blocking(state, template) == [
        "「结果确认」尚未填写 / Result confirmation is still empty"]


def test_open_action_items_block_minutes_and_are_overdue_after_their_date(settings):
    template = get_template("meeting_minutes")
    events = created(settings, "d4", "meeting_minutes",
                     [("host", "zhangwei"), ("attendee", "lina")])
    items = example("meeting_minutes")["action_items"]
    assert [i["due"] for i in items] == ["2024-05-22", "2024-05-23"]
    reasons = [r for r in blocking(fold(events), template, today="2024-05-23")
               if "action item" in r]
    assert [r.split(" / ")[1].split(" (")[0] for r in reasons] == [
        "action item 1 is OVERDUE", "action item 2 is open"]
    events.append(event("d4", "action-item-done", "lina", {"item": 1}, hours=1))
    reasons = [r for r in blocking(fold(events), template, today="2024-05-25")
               if "action item" in r]
    assert len(reasons) == 1 and "action item 2 is OVERDUE" in reasons[0]


def test_decline_void_and_close_decide_the_status_in_that_order(settings):
    template = get_template("requirement_confirmation")
    events = created(settings, "d5", "requirement_confirmation",
                     [("requester", "zhangwei"), ("receiver", "lina")])
    events.append(signed("d5", fold(events).members[0], hours=1))
    events.append(event("d5", "declined", "lina", {"party": "lina", "reason": "交付时间不可行"},
                        hours=2))
    declined = fold(events)
    assert status_of(declined) == "declined" and next_members(declined) == []
    assert blocking(declined, template)[0] == (
        "lina 拒签 / declined by lina: 交付时间不可行")
    events.append(event("d5", "voided", "admin", {"reason": "需求取消"}, hours=3))
    voided = fold(events)
    assert status_of(voided) == "voided"
    assert blocking(voided, template) == ["文档已作废 / voided: 需求取消"]


def test_reassignment_moves_the_step_to_the_new_party(settings):
    events = created(settings, "d6", "requirement_confirmation",
                     [("requester", "zhangwei"), ("receiver", "lina")], creator="qian")
    events.append(event("d6", "reassigned", "admin", {"field": "requester", "from": "zhangwei",
                                                      "to": "zhaomin", "reason": "出差"},
                        hours=1))
    state = fold(events)
    assert [(m.field, m.party) for m in next_members(state)] == [("requester", "zhaomin")]
    assert involves(state, "zhaomin") and involves(state, "qian")
    assert not involves(state, "zhangwei")


def test_the_stored_state_reads_back_equal(settings):
    events = progress_sync(settings)
    members = fold(events).members
    events += [signed("d1", members[0], hours=1),
               event("d1", "progress-entry", "wangqiang", {"date": "2024-05-21",
                                                           "text": "联调完成"}, hours=2),
               signed("d1", members[2], hours=3, kind="upload-accepted")]
    state = fold(events)
    assert state_from_json(state_to_json(state)) == state
    assert state.progress == ({"date": "2024-05-21", "text": "联调完成"},)
