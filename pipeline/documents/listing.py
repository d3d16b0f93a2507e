"""Finding documents: every document, open or ended, filtered, sorted and paged.

The same query serves the REST list (``GET /api/documents``) and the web pages' document
list: by status, template, party, number and creation dates, with a free-text search over
number, template title and the parties' names, in a stable order.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from pydantic import BaseModel

from pipeline.config import Settings
from pipeline.documents.repository import report_of
from pipeline.documents.state import (
    DocumentState,
    Status,
    fold,
    involves,
    state_from_json,
    status_of,
)
from pipeline.documents.status import DocumentStatus
from pipeline.errors import BadInput
from pipeline.forms.manifest import get_template, list_templates
from pipeline.people.parties import list_parties
from pipeline.record import database

SORTS = ("-created", "created", "number", "-number", "-updated", "updated")
MAX_LIMIT = 200


@dataclass(frozen=True)
class DocumentQuery:
    """What to list. Empty fields do not filter; dates are days in the deployment's zone,
    both ends included."""

    status: str = ""
    template: str = ""
    party: str = ""
    number: str = ""
    text: str = ""
    created_from: date | None = None
    created_to: date | None = None
    sort: str = "-created"
    limit: int = 50
    offset: int = 0

    def checked(self) -> DocumentQuery:
        """Return the query if every value is usable, or raise BadInput naming the first
        that is not."""
        if self.status and self.status not in tuple(Status):
            raise BadInput(f"未知状态 {self.status!r}", f"unknown status {self.status!r} "
                           f"(one of {', '.join(Status)})")
        if self.template:
            get_template(self.template)
        if self.sort not in SORTS:
            raise BadInput(f"未知排序 {self.sort!r}",
                           f"unknown sort {self.sort!r} (one of {', '.join(SORTS)})")
        if not 1 <= self.limit <= MAX_LIMIT or self.offset < 0:
            raise BadInput(f"每页 1 到 {MAX_LIMIT} 条，偏移量不能为负",
                           f"limit must be 1..{MAX_LIMIT} and offset at least 0")
        if self.created_from and self.created_to and self.created_from > self.created_to:
            raise BadInput("开始日期晚于结束日期", "created_from is after created_to")
        return self


class ListedDocument(DocumentStatus):
    """A document's status in the list, with its template's title and when it last
    changed (UTC)."""

    title: str
    updated_at: str


class DocumentPage(BaseModel):
    """One page of the list, and how many documents match in all."""

    items: list[ListedDocument]
    total: int
    limit: int
    offset: int


def _all_states(settings: Settings) -> list[tuple[DocumentState, str]]:
    with database.connection(settings.database) as conn:
        rows = database.select_documents(conn, tuple(Status))
        return [(state_from_json(row["state"]) if row["state"]
                 else fold(database.select_events(conn, row["id"])), row["updated_at"])
                for row in rows]


def _searchable(state: DocumentState, names: dict[str, str]) -> str:
    template = get_template(state.template)
    people = [state.creator, *(m.party for m in state.members)]
    return " ".join([state.number, state.id, template.title_zh, template.title_en,
                     *people, *(names.get(p, "") for p in people)]).casefold()


def _matches(state: DocumentState, status: str, query: DocumentQuery, settings: Settings,
             names: dict[str, str]) -> bool:
    if query.status and status != query.status:
        return False
    if query.template and state.template != query.template:
        return False
    if query.party and not involves(state, query.party):
        return False
    if query.number and query.number.casefold() not in state.number.casefold():
        return False
    created = datetime.fromisoformat(state.created_at).astimezone(settings.zone).date()
    if query.created_from and created < query.created_from:
        return False
    if query.created_to and created > query.created_to:
        return False
    words = query.text.casefold().split()
    return not words or all(word in _searchable(state, names) for word in words)


def list_documents(settings: Settings, query: DocumentQuery,
                   visible_to: str | None = None) -> DocumentPage:
    """Return the page of documents matching ``query``; ``visible_to`` (a party id) keeps
    only the documents that party created or signs. Ties in the sort are broken by id,
    so pages never overlap or skip."""
    query = query.checked()
    names = {party.id: party.name for party in list_parties(settings)}
    found = []
    for state, updated in _all_states(settings):
        if visible_to is not None and not involves(state, visible_to):
            continue
        if _matches(state, status_of(state), query, settings, names):
            found.append((state, updated))
    key = query.sort.lstrip("-")
    column = {"created": lambda item: item[0].created_at,
              "number": lambda item: item[0].number,
              "updated": lambda item: item[1]}[key]
    found.sort(key=lambda item: item[0].id)
    found.sort(key=column, reverse=query.sort.startswith("-"))
    page = found[query.offset:query.offset + query.limit]
    titles = {template.key: template.title_zh for template in list_templates()}
    items = [ListedDocument(**dict(report_of(settings, state)),
                            title=titles.get(state.template, ""), updated_at=updated)
             for state, updated in page]
    return DocumentPage(items=items, total=len(found), limit=query.limit, offset=query.offset)
