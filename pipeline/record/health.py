"""The service's health: whether the database, the store and LibreOffice can do their work.

``status`` stays ``ok`` while the service answers (what a load balancer's liveness check
reads); ``ready`` is true only when every part is, each part saying what it found.
"""

from __future__ import annotations

from importlib.metadata import version
from typing import Any

from pipeline.config import Settings
from pipeline.errors import KNOWN_ERRORS
from pipeline.forms.manifest import list_templates
from pipeline.record.backends import open_store
from pipeline.record.database import database_health
from pipeline.render.libreoffice import ConverterPool


def service_health(settings: Settings, pool: ConverterPool | None,
                   starting: bool = False) -> dict[str, Any]:
    """Return the health report: version, templates, and the database, store and
    LibreOffice pool (``starting`` while the pool is still warming up)."""
    if starting or pool is None:
        libreoffice: dict[str, Any] = {"ok": False, "starting": True}
    else:
        libreoffice = pool.health()
    try:
        store = open_store(settings).health()
    except KNOWN_ERRORS as exc:  # a store URL that cannot even be parsed
        store = {"backend": "s3", "ok": False, "problem": str(exc)}
    parts = {"database": database_health(settings.database_path), "store": store,
             "libreoffice": libreoffice}
    return {"status": "ok", "ready": all(part["ok"] for part in parts.values()),
            "version": version("countersign"), "templates": len(list_templates()), **parts}
