"""FastAPI dependencies: the settings, the caller (from its bearer token), and the
documents a caller may know exist."""

from __future__ import annotations

from fastapi import Depends, Header, Request

from api.errors import ApiError
from pipeline.config import Settings
from pipeline.documents.repository import load_state
from pipeline.documents.state import DocumentState
from pipeline.errors import UnknownDocument
from pipeline.people.access import Principal, principal_for


def settings_of(request: Request) -> Settings:
    return request.app.state.settings


def caller(authorization: str | None = Header(default=None),
           settings: Settings = Depends(settings_of)) -> Principal:
    """Return the caller of a ``Bearer`` token; 401 without a valid one."""
    scheme, _, token = (authorization or "").partition(" ")
    principal = principal_for(settings, token.strip()) if scheme.lower() == "bearer" else None
    if principal is None:
        raise ApiError(401, "unauthorized", "需要有效的访问令牌", "a valid bearer token is needed")
    return principal


def role(*allowed: str):
    """Return a dependency admitting only callers whose role is in ``allowed`` (else 403)."""
    def check(principal: Principal = Depends(caller)) -> Principal:
        if principal.role not in allowed:
            raise ApiError(403, "forbidden", "无权执行此操作",
                           f"this needs the {' or '.join(allowed)} role")
        return principal
    return check


def visible_document(document_id: str, principal: Principal = Depends(caller),
                     settings: Settings = Depends(settings_of)) -> DocumentState:
    """Return the document's state if the caller may know it exists; 404 otherwise, so a
    party cannot even learn that another party's document exists."""
    try:
        state = load_state(settings, document_id)
    except UnknownDocument:
        state = None
    if state is None or not principal.may_see(state):
        raise ApiError(404, "unknown_document", f"未知文档 {document_id!r}",
                       f"unknown document {document_id!r}")
    return state
