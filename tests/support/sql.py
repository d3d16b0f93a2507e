"""Raw SQL on a test's database, as a tamperer or an auditor with database access would run
it: outside the pipeline, on either backend (an SQLite path or a PostgreSQL URL)."""

from __future__ import annotations

import os

from pipeline.record.engine import connection, run


def sql(target: str | os.PathLike, statement: str, params: dict | None = None) -> list[tuple]:
    """Run ``statement`` (``:name`` parameters) on ``target``; return its rows, if any."""
    with connection(target) as conn:
        result = run(conn, statement, params)
        return [tuple(row) for row in result] if result.returns_rows else []
