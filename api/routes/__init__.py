"""The REST API under ``/api``: one router per resource."""

from __future__ import annotations

from api.routes import documents, health, jobs, parties, templates, verify

ROUTERS = (health.router, templates.router, parties.router, documents.router, verify.router,
           jobs.router)
