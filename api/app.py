"""The FastAPI service: REST under ``/api``, OpenAPI at ``/docs``."""

from __future__ import annotations

from importlib.metadata import version

from fastapi import FastAPI

from api.errors import countersign_error_handler
from api.models import Health, TemplateSummary
from pipeline.config import Settings, load_settings
from pipeline.errors import CountersignError
from pipeline.templates import get_template, list_templates


def create_app(settings: Settings | None = None) -> FastAPI:
    """Return the application for ``settings`` (default: from the environment)."""
    settings = settings or load_settings()
    app = FastAPI(title="Countersign", version=version("countersign"),
                  description="会签 · document generation and per-party e-signatures")
    app.state.settings = settings
    app.add_exception_handler(CountersignError, countersign_error_handler)

    @app.get("/api/health", response_model=Health)
    def health() -> Health:
        return Health(status="ok", version=version("countersign"),
                      templates=len(list_templates()))

    @app.get("/api/templates", response_model=list[TemplateSummary])
    def templates() -> list[TemplateSummary]:
        return [TemplateSummary(**template.summary()) for template in list_templates()]

    @app.get("/api/templates/{key}", response_model=TemplateSummary)
    def template(key: str) -> TemplateSummary:
        return TemplateSummary(**get_template(key).summary())

    return app
