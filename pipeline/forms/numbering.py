"""Document numbers: year + department + sequence, e.g. ``2024-市场-001``.

The pattern comes from the template's manifest; the sequence is per template, year and
department and is allocated atomically in the database.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection

from pipeline.config import Settings
from pipeline.forms.manifest import Template
from pipeline.record import database

# A revised document keeps its number with a version mark: ``2026-市场-001 第2版``.
VERSION_MARK = re.compile(r"\s*第(\d+)版$")


def today_in(settings: Settings) -> date:
    """Return today's date in the deployment's time zone (numbers use its year)."""
    return datetime.now(settings.zone).date()


def department_of(template: Template, form: dict[str, Any]) -> str:
    """Return the department that goes into the number, without the manifest's suffix."""
    value: Any = form
    for part in filter(None, template.numbering.dept_field.split(".")):
        value = value.get(part, "") if isinstance(value, dict) else ""
    dept = str(value or "").strip()
    suffix = template.numbering.strip_suffix
    if suffix and dept.endswith(suffix) and len(dept) > len(suffix):
        dept = dept[: -len(suffix)]
    return dept


def allocate_number(conn: Connection, template: Template, form: dict[str, Any],
                    today: date) -> str:
    """Return a fresh document number for ``form``; never the same twice."""
    year, dept = today.year, department_of(template, form)
    scope = f"{template.key}|{year}|{dept}"
    seq = database.next_in_sequence(conn, scope)
    return template.numbering.pattern.format(year=year, dept=dept, seq=seq)


def draft_number(template: Template, form: dict[str, Any], today: date) -> str:
    """Return the number shown on a preview that takes no number: the sequence is 草稿."""
    pattern = template.numbering.pattern
    head = pattern.split("{seq", 1)[0]
    return head.format(year=today.year, dept=department_of(template, form)) + "草稿"


def version_of(number: str) -> tuple[str, int]:
    """Return the number without its version mark, and the version (1 when unmarked)."""
    match = VERSION_MARK.search(number)
    if not match:
        return number, 1
    return number[: match.start()], int(match.group(1))


def next_version(number: str) -> str:
    """Return the number of the next version of ``number``: ``2026-市场-001 第2版``."""
    base, version = version_of(number)
    return f"{base} 第{version + 1}版"
