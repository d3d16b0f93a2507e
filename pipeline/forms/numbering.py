"""Document numbers: year + department + sequence, e.g. ``2024-市场-001``.

The pattern comes from the template's manifest; the sequence is per template, year and
department and is allocated atomically in the database.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection

from pipeline.config import Settings
from pipeline.errors import OperationFailed
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


@dataclass(frozen=True)
class NumberReservation:
    """A document number held for one creation until it is recorded or given back."""

    scope: str
    seq: int
    holder: str
    number: str


class NumberTakenOver(OperationFailed):
    """The creation took longer than its number's lease and another document took it."""

    code = "number_taken_over"


def _scope(template: Template, form: dict[str, Any], today: date) -> tuple[str, str]:
    dept = department_of(template, form)
    return f"{template.key}|{today.year}|{dept}", dept


def reserve_number(conn: Connection, template: Template, form: dict[str, Any], today: date,
                   lease: timedelta = timedelta(minutes=15)) -> NumberReservation:
    """Return a number held for one creation for ``lease``: ``record_number`` takes it for
    good in the transaction that records the document, ``release_number`` gives it back.
    A number whose creation died unrecorded goes to the next document once its lease ends:
    sequences have no gaps and never a duplicate."""
    scope, dept = _scope(template, form, today)
    holder = secrets.token_hex(8)
    now = datetime.now(UTC)
    seq = database.reserve_in_sequence(conn, scope, holder, now.isoformat(),
                                       (now + lease).isoformat())
    return NumberReservation(scope, seq, holder, template.numbering.pattern.format(
        year=today.year, dept=dept, seq=seq))


def record_number(conn: Connection, reservation: NumberReservation, used_by: str) -> None:
    """Take ``reservation`` for good inside the caller's transaction; raise NumberTakenOver
    (undoing that transaction) if its lease ran out and another document took it."""
    if not database.use_reservation(conn, reservation.scope, reservation.seq,
                                    reservation.holder, used_by):
        raise NumberTakenOver(
            f"编号 {reservation.number} 的保留已过期并被另一文件使用，请重试",
            f"number {reservation.number} was held too long and went to another document; "
            "try again")


def release_number(conn: Connection, reservation: NumberReservation) -> None:
    """Give ``reservation`` back at once: the next document takes it."""
    database.release_reservation(conn, reservation.scope, reservation.seq, reservation.holder)


def allocate_number(conn: Connection, template: Template, form: dict[str, Any],
                    today: date, used_by: str = "generated") -> str:
    """Return a fresh document number for ``form``, taken for good at once (a file made
    outside the ledger); never the same twice."""
    scope, dept = _scope(template, form, today)
    now = datetime.now(UTC).isoformat()
    seq = database.reserve_in_sequence(conn, scope, secrets.token_hex(8), now, now,
                                       used_by=used_by)
    return template.numbering.pattern.format(year=today.year, dept=dept, seq=seq)


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
