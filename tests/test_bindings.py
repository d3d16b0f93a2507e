"""Binding parties to roles when a document is created (no rendering needed)."""

from __future__ import annotations

import pytest

from pipeline.config import Settings
from pipeline.documents.create import bind_members
from pipeline.errors import BadInput
from pipeline.forms.manifest import get_template
from pipeline.people.parties import add_party


@pytest.fixture
def settings(tmp_path) -> Settings:
    settings = Settings(data_dir=tmp_path / "data")
    for party_id, dept in (("zhangwei", "市场部"), ("lina", "产品部"), ("zhaomin", "市场部")):
        add_party(settings, name=party_id, dept=dept, email=f"{party_id}@example.com",
                  party_id=party_id)
    return settings


def test_one_party_cannot_hold_two_roles(settings):
    template = get_template("requirement_confirmation")
    with pytest.raises(BadInput, match=r"zhangwei cannot hold two roles .*requester, receiver"):
        bind_members(template, [("requester", "zhangwei"), ("receiver", "zhangwei")], settings)
    minutes = get_template("meeting_minutes")
    with pytest.raises(BadInput, match="cannot hold two roles"):
        bind_members(minutes, [("host", "lina"), ("attendee", "lina"),
                               ("attendee", "zhaomin")], settings)
    members, _ = bind_members(minutes, [("host", "lina"), ("attendee", "zhangwei"),
                                        ("attendee", "zhaomin")], settings)
    assert [m.field for m in members] == ["host", "attendee-1", "attendee-2"]
