"""The service's health: whether the database, the store and LibreOffice can do their work.

``status`` stays ``ok`` while the service answers (what a load balancer's liveness check
reads); ``ready`` is true only when every part is, each part saying what it found.
"""

from __future__ import annotations

from datetime import UTC, datetime
from importlib.metadata import version
from typing import Any

from sqlalchemy.engine import make_url

from pipeline.config import Settings
from pipeline.errors import KNOWN_ERRORS
from pipeline.forms.manifest import list_templates
from pipeline.record import database, jobs
from pipeline.record.backends import open_store
from pipeline.record.engine import DatabaseUnavailable, database_url
from pipeline.render.libreoffice import ConverterPool


def database_health(target: str) -> dict[str, Any]:
    """Return {backend, ok, path or url, events, anchored_through}: whether the database
    answers. A URL is shown without its password."""
    url = make_url(database_url(target))
    backend = "postgresql" if url.get_backend_name() == "postgresql" else "sqlite"
    # Anonymous callers read this: the host and database name, never a user, a password
    # or the query string (libpq options such as sslpassword live there).
    where = {"path": url.database} if backend == "sqlite" else \
        {"url": f"postgresql://{url.host or ''}:{url.port or 5432}/{url.database or ''}"}
    try:
        with database.connection(target) as conn:
            head, anchor = database.chain_head(conn), database.last_anchor(conn)
    except (database.DatabaseError, DatabaseUnavailable) as exc:
        problem = exc.en if isinstance(exc, DatabaseUnavailable) else \
            str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        return {"backend": backend, "ok": False, **where, "problem": problem}
    return {"backend": backend, "ok": True, **where,
            "events": head[0] if head else 0, "anchored_through": anchor["seq"] if anchor else 0}


def queue_health(settings: Settings, consuming: bool) -> dict[str, Any]:
    """Return the job queue's health from the job records: {ok, pending, oldest_pending_s,
    running, stalled, last_pass_at, consuming} (``consuming``: this process runs jobs)."""
    try:
        with database.connection(settings.database) as conn:
            found = jobs.queue_health(conn, datetime.now(UTC).isoformat(timespec="microseconds"))
    except database.DatabaseError as exc:
        problem = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        return {"ok": False, "problem": problem, "consuming": consuming}
    return {**found, "consuming": consuming}


def service_health(settings: Settings, pool: ConverterPool | None,
                   starting: bool = False, consuming: bool = False) -> dict[str, Any]:
    """Return the health report: version, templates, and the database, store, job queue
    and LibreOffice pool (``starting`` while the pool is still warming up; ``consuming``
    when this process runs queued jobs)."""
    if starting or pool is None:
        libreoffice: dict[str, Any] = {"ok": False, "starting": True}
    else:
        libreoffice = pool.health()
    try:
        store = open_store(settings).health()
    except KNOWN_ERRORS as exc:  # a store URL that cannot even be parsed
        store = {"backend": "s3", "ok": False, "problem": str(exc)}
    parts = {"database": database_health(settings.database), "store": store,
             "queue": queue_health(settings, consuming), "libreoffice": libreoffice}
    return {"status": "ok", "ready": all(part["ok"] for part in parts.values()),
            "version": version("countersign"), "templates": len(list_templates()), **parts}
