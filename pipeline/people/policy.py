"""Who may see and do what: the one definition the REST routes and the web pages both ask.

Roles: ``admin`` (parties, create, void, close, legal hold, bulk), ``party`` (sees only the
documents it created or signs; signs, uploads or declines only its own step, voids or revises
only what it created, resolves only an issue it is responsible for: the use cases check
whose step or document it is), ``auditor`` (sees and verifies everything, never writes). The
health check and the template list are public; everything else needs a principal.

A document the caller may not see answers exactly like one that does not exist
(:meth:`UnknownDocument.named`), so no one learns that another party's document exists;
likewise a job (and its files) that someone else submitted, unless the caller is an admin.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, StrEnum

from pipeline.config import Settings
from pipeline.documents.repository import load_state
from pipeline.documents.state import DocumentState, involves
from pipeline.errors import Forbidden, UnknownDocument
from pipeline.people.access import Principal, Role

#: Roles that see every document.
SEES_ALL = frozenset({Role.ADMIN, Role.AUDITOR})


class Scope(Enum):
    """How an action relates to a document."""

    NONE = "none"  # not about one document
    SEEN = "seen"  # a document the caller must see: unseen answers as missing, first
    AUDIT = "audit"  # a document, but the role is checked first: a role that may never
    # take the action is refused the same way whatever the document


@dataclass(frozen=True)
class Rule:
    roles: frozenset[Role]
    scope: Scope = Scope.NONE


class Action(StrEnum):
    LIST_PARTIES = "list_parties"
    ADD_PARTY = "add_party"
    CREATE_DOCUMENT = "create_document"
    LIST_OPEN = "list_open"
    LIST_DOCUMENTS = "list_documents"
    READ_DOCUMENT = "read_document"
    READ_ARCHIVE = "read_archive"
    SIGN = "sign"
    UPLOAD = "upload"
    DECLINE = "decline"
    VOID = "void"
    CLOSE = "close"
    REASSIGN = "reassign"
    RESOLVE = "resolve"
    REVISE = "revise"
    HOLD = "hold"
    ADD_PROGRESS = "add_progress"
    MARK_ACTION_DONE = "mark_action_done"
    VERIFY_DOCUMENT = "verify_document"
    VERIFY_FILE = "verify_file"
    VERIFY_LEDGER = "verify_ledger"
    BULK = "bulk"
    REVIEW = "review"


_ANYONE = frozenset(Role)
_READERS = SEES_ALL
_WRITERS = frozenset({Role.ADMIN, Role.PARTY})
_ADMIN = frozenset({Role.ADMIN})
_PARTY = frozenset({Role.PARTY})

RULES: dict[Action, Rule] = {
    Action.LIST_PARTIES: Rule(_READERS),
    Action.ADD_PARTY: Rule(_ADMIN),
    Action.CREATE_DOCUMENT: Rule(_WRITERS),
    Action.LIST_OPEN: Rule(_ANYONE),
    Action.LIST_DOCUMENTS: Rule(_ANYONE),
    Action.READ_DOCUMENT: Rule(_ANYONE, Scope.SEEN),
    Action.READ_ARCHIVE: Rule(_ANYONE, Scope.SEEN),
    Action.SIGN: Rule(_PARTY, Scope.SEEN),
    Action.UPLOAD: Rule(_PARTY, Scope.SEEN),
    Action.DECLINE: Rule(_PARTY, Scope.SEEN),
    # The creator or an administrator: void_document and revise_document check the creator.
    Action.VOID: Rule(_WRITERS, Scope.SEEN),
    Action.CLOSE: Rule(_ADMIN, Scope.SEEN),
    Action.REASSIGN: Rule(_WRITERS, Scope.SEEN),
    Action.RESOLVE: Rule(_WRITERS, Scope.SEEN),
    Action.REVISE: Rule(_WRITERS, Scope.SEEN),
    Action.HOLD: Rule(_ADMIN, Scope.SEEN),
    Action.ADD_PROGRESS: Rule(_WRITERS, Scope.SEEN),
    Action.MARK_ACTION_DONE: Rule(_WRITERS, Scope.SEEN),
    Action.VERIFY_DOCUMENT: Rule(_READERS, Scope.AUDIT),
    Action.VERIFY_FILE: Rule(_ANYONE),
    Action.VERIFY_LEDGER: Rule(_READERS),
    Action.BULK: Rule(_ADMIN),
    Action.REVIEW: Rule(_READERS),
}


def may(principal: Principal, action: Action) -> bool:
    """Return True if the principal's role may take ``action`` (on a document it sees)."""
    return principal.role in RULES[action].roles


def may_see(principal: Principal, state: DocumentState) -> bool:
    """Return True if the principal may know the document exists: admins and auditors see
    every document, a party only those it created or is (or was made) a signer of."""
    return principal.role in SEES_ALL or involves(state, principal.party or "")


def may_see_job(principal: Principal, created_by: str | None) -> bool:
    """Return True if the principal may know of a job submitted by ``created_by`` (and read
    its files): an administrator every job, anyone else only the jobs it submitted. A job
    it may not see answers as one that does not exist."""
    return principal.role is Role.ADMIN or (created_by is not None
                                            and created_by == principal.actor)


def party_filter(principal: Principal) -> str | None:
    """Return the party whose documents alone the principal sees, or None for all."""
    return None if principal.role in SEES_ALL else principal.party or ""


def require(principal: Principal, action: Action) -> None:
    """Raise Forbidden unless the principal's role may take ``action``."""
    if not may(principal, action):
        roles = [role for role in Role if role in RULES[action].roles]
        raise Forbidden("无权执行此操作",
                        f"this needs the {' or '.join(roles)} role")


def seen_document(settings: Settings, principal: Principal, document_id: str
                  ) -> DocumentState:
    """Return the document's state if the principal may see it; UnknownDocument, the same
    error, when it is hidden or does not exist."""
    try:
        state = load_state(settings, document_id)
    except UnknownDocument:
        state = None
    if state is None or not may_see(principal, state):
        raise UnknownDocument.named(document_id)
    return state


def authorize(settings: Settings, principal: Principal, action: Action,
              document_id: str | None = None) -> DocumentState | None:
    """Return the state of the document ``action`` is about (None when it is about none) if
    the principal may take it; raise UnknownDocument or Forbidden otherwise, in the order
    the action's scope says."""
    scope = RULES[action].scope
    state = None
    if scope is Scope.SEEN:
        assert document_id is not None
        state = seen_document(settings, principal, document_id)
    require(principal, action)
    if scope is Scope.AUDIT:
        assert document_id is not None
        state = seen_document(settings, principal, document_id)
    return state
