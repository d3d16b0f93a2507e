"""``/api/health``: is the service up, which version, how many templates, and whether the
database, the store, the job queue and the LibreOffice pool can do their work."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from api.deps import settings_of
from api.models import Health
from pipeline.config import Settings
from pipeline.record.health import service_health

router = APIRouter(prefix="/api", tags=["service"])


@router.get("/health", response_model=Health)
def health(request: Request, settings: Settings = Depends(settings_of)) -> dict:
    starter = getattr(request.app.state, "pool_started", None)
    return service_health(settings, getattr(request.app.state, "pool", None),
                          starting=starter is None or starter.is_alive(),
                          consuming=getattr(request.app.state, "job_runner", None) is not None)
