"""FastAPI dependencies: the settings, the caller (from its bearer token), and the policy's
answer on what the caller asks to do (``pipeline.people.policy``)."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.errors import ApiError
from pipeline.config import Settings
from pipeline.documents.state import DocumentState
from pipeline.people.access import Principal, principal_for
from pipeline.people.policy import Action, authorize, require


def settings_of(request: Request) -> Settings:
    return request.app.state.settings


# Declared in the OpenAPI document (the docs' Authorize button); a missing or malformed
# header is answered by ``caller`` with the project's own 401 body.
bearer = HTTPBearer(auto_error=False, scheme_name="token",
                    description="countersign tokens create --role admin|party|auditor")


def caller(credentials: HTTPAuthorizationCredentials | None = Security(bearer),
           settings: Settings = Depends(settings_of)) -> Principal:
    """Return the caller of a ``Bearer`` token; 401 without a valid one."""
    token = credentials.credentials.strip() if credentials else ""
    principal = principal_for(settings, token) if token else None
    if principal is None:
        raise ApiError(401, "unauthorized", "需要有效的访问令牌", "a valid bearer token is needed")
    return principal


def permitted(action: Action):
    """Return a dependency answering the caller if its role may take ``action`` (else 403)."""
    def check(principal: Principal = Depends(caller)) -> Principal:
        require(principal, action)
        return principal
    return Depends(check)


@dataclass(frozen=True)
class OnDocument:
    """A caller allowed to take an action on the document in the path, and its state."""

    principal: Principal
    state: DocumentState


def on_document(action: Action):
    """Return a dependency answering the caller and the document of the path if the caller
    may take ``action`` on it: 404 for a document it may not see (exactly as for one that
    does not exist), 403 for a role that may not."""
    def check(document_id: str, principal: Principal = Depends(caller),
              settings: Settings = Depends(settings_of)) -> OnDocument:
        state = authorize(settings, principal, action, document_id)
        assert state is not None
        return OnDocument(principal, state)
    return Depends(check)
