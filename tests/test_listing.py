"""The document list: filters, search, visibility, paging and a stable order, over ledger
records written the way the use cases write them (no rendering needed to list)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, date, datetime, timedelta

import pytest

from pipeline.config import Settings
from pipeline.documents.listing import DocumentQuery, list_documents
from pipeline.documents.repository import projection
from pipeline.documents.state import Member, fold
from pipeline.errors import BadInput, UnknownTemplate
from pipeline.people.parties import add_party
from pipeline.record import database, ledger
from tests.support.forms import example

START = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)


@pytest.fixture
def settings(tmp_path) -> Settings:
    settings = Settings(data_dir=tmp_path / "data")
    for party_id, name in (("zhangwei", "张伟"), ("lina", "李娜"), ("wangqiang", "王强")):
        add_party(settings, name=name, dept="市场部", email=f"{party_id}@example.com",
                  party_id=party_id)
    return settings


def record(settings: Settings, index: int, template: str, parties: list[tuple[str, str]],
           extra: list[str] = ()) -> str:
    """Write a document created ``index`` days after START, with the given (role, party)
    members, then the events named in ``extra`` (declined, voided)."""
    document_id = f"doc-{index:04d}"
    members = [asdict(Member(role, order, None, party, role))
               for order, (role, party) in enumerate(parties, start=1)]
    created = ledger.new_event(document_id, "created", parties[0][1], {
        "template": template, "template_version": 2, "number": f"2026-市场-{index:03d}",
        "form": example(template), "members": members})
    created["at"] = (START + timedelta(days=index)).isoformat()
    events = [created, ledger.new_event(document_id, "prepared", "system",
                                        revision_after=f"{index:064x}")]
    for kind in extra:
        events.append(ledger.new_event(document_id, kind, parties[-1][1],
                                       {"party": parties[-1][1], "reason": "x"}))
    with database.connection(settings.database) as conn:
        ledger.append(conn, events, projection=projection(fold([{**e, "seq": 0}
                                                                for e in events])))
    return document_id


@pytest.fixture
def documents(settings) -> list[str]:
    pair = [("requester", "zhangwei"), ("receiver", "lina")]
    issue = [("responsible", "wangqiang"), ("reporter", "lina")]
    return [record(settings, 0, "requirement_confirmation", pair),
            record(settings, 1, "issue_tracking", issue),
            record(settings, 2, "requirement_confirmation", pair, ["declined"]),
            record(settings, 3, "issue_tracking", issue, ["voided"]),
            record(settings, 4, "requirement_confirmation", pair)]


def ids(page) -> list[str]:
    return [item.id for item in page.items]


def test_everything_newest_first_with_ended_documents(settings, documents):
    page = list_documents(settings, DocumentQuery())
    assert ids(page) == documents[::-1] and page.total == 5
    assert {item.status for item in page.items} == {"awaiting_signatures", "declined",
                                                       "voided"}
    assert page.items[0].title == "需求确认函"


def test_filters_combine(settings, documents):
    def query(**kwargs):
        return ids(list_documents(settings, DocumentQuery(**kwargs)))

    assert query(status="declined") == [documents[2]]
    assert query(template="issue_tracking") == [documents[3], documents[1]]
    assert query(party="zhangwei") == [documents[4], documents[2], documents[0]]
    assert query(party="wangqiang", status="voided") == [documents[3]]
    assert query(number="市场-001") == [documents[1]]
    assert query(created_from=date(2026, 3, 2), created_to=date(2026, 3, 3)) == [
        documents[2], documents[1]]
    assert query(text="王强") == [documents[3], documents[1]]  # a party's name
    assert query(text="需求确认函 张伟 lina") == [documents[4], documents[2], documents[0]]
    assert query(text="nobody") == []


def test_a_party_sees_only_its_documents(settings, documents):
    assert ids(list_documents(settings, DocumentQuery(), visible_to="zhangwei")) == [
        documents[4], documents[2], documents[0]]
    assert list_documents(settings, DocumentQuery(), visible_to="outsider").total == 0


def test_pages_do_not_overlap_and_ties_keep_their_order(settings, documents):
    first = list_documents(settings, DocumentQuery(sort="number", limit=2))
    second = list_documents(settings, DocumentQuery(sort="number", limit=2, offset=2))
    third = list_documents(settings, DocumentQuery(sort="number", limit=2, offset=4))
    listed = ids(first) + ids(second) + ids(third)
    assert sorted(listed) == sorted(documents) and first.total == 5
    assert listed == ids(list_documents(settings, DocumentQuery(sort="number")))
    oldest = list_documents(settings, DocumentQuery(sort="created"))
    assert ids(oldest) == documents


@pytest.mark.parametrize("kwargs, message", [
    ({"status": "lost"}, "unknown status"),
    ({"sort": "colour"}, "unknown sort"),
    ({"limit": 0}, "limit must be"),
    ({"limit": 500}, "limit must be"),
    ({"offset": -1}, "offset"),
    ({"created_from": date(2026, 3, 5), "created_to": date(2026, 3, 1)}, "after"),
])
def test_bad_queries_name_the_problem(settings, kwargs, message):
    with pytest.raises(BadInput, match=message):
        list_documents(settings, DocumentQuery(**kwargs))
    with pytest.raises(UnknownTemplate):
        list_documents(settings, DocumentQuery(template="nope"))
