"""``/api/health``: is the service up, which version, how many templates."""

from __future__ import annotations

from importlib.metadata import version

from fastapi import APIRouter

from api.models import Health
from pipeline.forms.manifest import list_templates

router = APIRouter(prefix="/api", tags=["service"])


@router.get("/health", response_model=Health)
def health() -> Health:
    return Health(status="ok", version=version("countersign"), templates=len(list_templates()))
