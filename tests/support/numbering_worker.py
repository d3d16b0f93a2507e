"""Run by test_numbering in separate processes (``python -m tests.support.numbering_worker
DB COUNT``): allocate COUNT numbers and print them, one a line."""

import sys
from datetime import date

from pipeline.forms.manifest import get_template
from pipeline.forms.numbering import allocate_number
from pipeline.record import database

if __name__ == "__main__":
    db, count = sys.argv[1], int(sys.argv[2])
    template = get_template("requirement_confirmation")
    form = {"requester": {"dept": "市场部", "name": "张伟"}}
    conn = database.connect(db)
    for _ in range(count):
        print(allocate_number(conn, template, form, date(2024, 5, 20)), flush=True)
