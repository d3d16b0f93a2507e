"""``/api/templates``: the document templates (public)."""

from __future__ import annotations

from fastapi import APIRouter

from api.models import TemplateSummary
from pipeline.forms.manifest import get_template, list_templates

router = APIRouter(prefix="/api/templates", tags=["templates"])


@router.get("", response_model=list[TemplateSummary])
def templates() -> list[TemplateSummary]:
    return [TemplateSummary(**template.summary()) for template in list_templates()]


@router.get("/{key}", response_model=TemplateSummary)
def template(key: str) -> TemplateSummary:
    return TemplateSummary(**get_template(key).summary())
