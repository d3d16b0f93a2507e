"""Pydantic models of every API request and response."""

from __future__ import annotations

from pydantic import BaseModel


class Health(BaseModel):
    status: str
    version: str
    templates: int


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
