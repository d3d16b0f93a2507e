"""Document numbers: year-department-sequence, atomic across processes."""

from __future__ import annotations

import subprocess
import sys
from datetime import date
from pathlib import Path

from pipeline.forms.manifest import get_template
from pipeline.forms.numbering import allocate_number, department_of, draft_number
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
