"""Pydantic models of the API's requests and responses. A document's status is the
pipeline's own model (``pipeline.documents.status.DocumentStatus``), answered as it is."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class Health(BaseModel):
    status: str
    version: str
    templates: int
    # Each part: {"ok": bool, "backend": …, and what it found}.
    ready: bool = False
    database: dict[str, Any] = {}
    store: dict[str, Any] = {}
    queue: dict[str, Any] = {}
    libreoffice: dict[str, Any] = {}


class HoldRequest(BaseModel):
    on: bool


class TemplateSummary(BaseModel):
    key: str
    title: str
    title_en: str
    version: int


class ErrorBody(BaseModel):
    code: str
    zh: str
    en: str
    message: str
    problems: list[dict[str, str]] = []


class PartyOut(BaseModel):
    id: str
    name: str
    dept: str
    email: str
    superior_email: str | None = None
    certificate_sha256: str | None = None
    created_at: str


class PartyIn(BaseModel):
    name: str
    dept: str
    email: str
    id: str | None = None
    superior_email: str | None = None
    issue_cert: bool = False
    passphrase: str | None = None


class Binding(BaseModel):
    role: str
    party: str


class CreateDocument(BaseModel):
    template: str
    data: dict[str, Any]
    parties: list[Binding]
    important: bool = False
    request_key: str | None = None


class SignRequest(BaseModel):
    passphrase: str = Field(min_length=1)
    revision: str | None = None


class ReasonRequest(BaseModel):
    reason: str


class ResolveRequest(BaseModel):
    """An issue's result (结果确认), recorded before the responsible department signs."""

    text: str


class ReviseRequest(BaseModel):
    """The changed form of a declined document; the parties stay the same unless named."""

    data: dict[str, Any]
    parties: list[Binding] | None = None


class ReassignRequest(BaseModel):
    field: str
    to: str
    reason: str


class SignatureVerdict(BaseModel):
    field: str
    signer: str
    valid: bool
    intact: bool
    trusted: bool
    timestamp: str | None
    modification_level: str | None
    coverage: str | None = None
    certificate_sha256: str | None = None
    problems: list[str]
    # ETSI EN 319 102-1: TOTAL_PASSED | INDETERMINATE | TOTAL_FAILED, and its subindication.
    indication: str = "INDETERMINATE"
    subindication: str | None = None
    warnings: list[str] = []
    changes_after_signing: list[str] = []


class Verdict(BaseModel):
    valid: bool
    indication: str = "INDETERMINATE"
    subindication: str | None = None
    signatures: list[SignatureVerdict]
    document_timestamps: list[SignatureVerdict] = []
    problems: list[str]
    warnings: list[str] = []


class LedgerVerdict(BaseModel):
    ok: bool
    events: int
    revisions: int
    problems: list[str]
    anchors: int = 0
    anchored_through: int = 0
    unanchored: int = 0
