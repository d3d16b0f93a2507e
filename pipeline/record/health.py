"""The service's health: whether the database, the store and LibreOffice can do their work.

``status`` stays ``ok`` while the service answers (what a load balancer's liveness check
reads); ``ready`` is true only when every part is, each part saying what it found.
"""

from __future__ import annotations

import sqlite3
from importlib.metadata import version
from pathlib import Path
from typing import Any

from pipeline.config import Settings
from pipeline.errors import KNOWN_ERRORS
from pipeline.forms.manifest import list_templates
from pipeline.record import database
from pipeline.record.backends import open_store
from pipeline.render.libreoffice import ConverterPool


def database_health(path: Path) -> dict[str, Any]:
    """Return {backend, ok, events, anchored_through}: whether the database answers."""
    try:
        with database.connection(path) as conn:
            head, anchor = database.chain_head(conn), database.last_anchor(conn)
    except sqlite3.Error as exc:
        return {"backend": "sqlite", "ok": False, "path": str(path), "problem": str(exc)}
    return {"backend": "sqlite", "ok": True, "path": str(path),
            "events": head[0] if head else 0, "anchored_through": anchor["seq"] if anchor else 0}


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
