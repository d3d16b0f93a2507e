"""Document numbers: year-department-sequence, atomic across processes."""

from __future__ import annotations

import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import pytest

from pipeline.forms.manifest import get_template
from pipeline.forms.numbering import (
    NumberTakenOver,
    allocate_number,
    department_of,
    draft_number,
    record_number,
    release_number,
    reserve_number,
)
from pipeline.record import database
from tests.support.forms import example


def test_seed_example_number(tmp_path):
    conn = database.connect(tmp_path / "db.sqlite")
    template = get_template("requirement_confirmation")
    form = example("requirement_confirmation")
    first = allocate_number(conn, template, form, date(2024, 5, 20))
    second = allocate_number(conn, template, form, date(2024, 5, 20))
    assert (first, second) == ("2024-市场-001", "2024-市场-002")
    form["requester"]["dept"] = "产品部"
    assert allocate_number(conn, template, form, date(2024, 5, 20)) == "2024-产品-001"
    assert allocate_number(conn, template, form, date(2025, 1, 2)) == "2025-产品-001"


def test_sequences_are_per_template():
    issue = get_template("issue_tracking")
    assert department_of(issue, example("issue_tracking")) == "研发"
    assert draft_number(issue, example("issue_tracking"), date(2024, 5, 1)) == "WT-2024-研发-草稿"


def test_eight_processes_fifty_each_no_duplicate_no_gap(database_target: str):
    db = database_target
    database.connect(db).close()
    root = Path(__file__).resolve().parent.parent
    procs = [
        subprocess.Popen([sys.executable, "-m", "tests.support.numbering_worker", db, "50"],
                         stdout=subprocess.PIPE, text=True, cwd=root)
        for _ in range(8)
    ]
    numbers = []
    for proc in procs:
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0
        numbers += out.split()
    assert len(numbers) == 400
    assert len(set(numbers)) == 400
    sequence = sorted(int(n.rsplit("-", 1)[1]) for n in numbers)
    assert sequence == list(range(1, 401))


def test_a_revision_keeps_the_number_with_a_version_mark():
    from pipeline.forms.numbering import next_version, version_of

    assert next_version("2026-市场-001") == "2026-市场-001 第2版"
    assert next_version("2026-市场-001 第2版") == "2026-市场-001 第3版"
    assert version_of("WT-2026-研发-003 第12版") == ("WT-2026-研发-003", 12)
    assert version_of("2026-市场-001") == ("2026-市场-001", 1)


def test_a_number_given_back_or_left_unrecorded_goes_to_the_next_document(database_target):
    template, form = get_template("requirement_confirmation"), example("requirement_confirmation")
    today = date(2024, 5, 20)
    with database.connection(database_target) as conn:
        first = reserve_number(conn, template, form, today)
        second = reserve_number(conn, template, form, today)
        third = reserve_number(conn, template, form, today, lease=timedelta(0))
        record_number(conn, first, "doc-1")
        release_number(conn, second)  # its render failed
        # The third's process was killed: its lease has ended, so it is given again too.
        again = [reserve_number(conn, template, form, today) for _ in range(3)]
        assert [r.number for r in again] == ["2024-市场-002", "2024-市场-003", "2024-市场-004"]
        with pytest.raises(NumberTakenOver, match="2024-市场-003"):
            record_number(conn, third, "doc-late")  # too late: another creation holds it
        for reservation, doc in zip(again, ("doc-2", "doc-3", "doc-4"), strict=True):
            record_number(conn, reservation, doc)
        release_number(conn, first)  # a recorded number is never given back
        assert reserve_number(conn, template, form, today).number == "2024-市场-005"


def test_a_taken_over_number_undoes_the_whole_append(database_target):
    from pipeline.record import ledger

    template, form = get_template("requirement_confirmation"), example("requirement_confirmation")
    with database.connection(database_target) as conn:
        late = reserve_number(conn, template, form, date(2024, 5, 20), lease=timedelta(0))
        taker = reserve_number(conn, template, form, date(2024, 5, 20))
        assert taker.number == late.number
        with pytest.raises(NumberTakenOver):
            ledger.append(conn, [ledger.new_event("doc-late", "created", "cli")],
                          within=lambda c: record_number(c, late, "doc-late"))
        assert database.select_events(conn) == []
