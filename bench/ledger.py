"""Benchmark: the ledger at scale.

Builds a data folder with N open documents (default 100,000; three events each, written
through the ledger's own append), then measures
- ``blocking --limit 100`` (the dashboard's most urgent documents) and the count of open ones;
- ``blocking`` over every open document;
- chain verification (``ledger verify`` without re-hashing stored files): events/s.

    .venv/bin/python bench/ledger.py [--documents 100000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import median_timed
from pipeline.config import Settings
from pipeline.documents.repository import blocking_documents, projection
from pipeline.documents.state import Member, fold
from pipeline.record import database, ledger
from tests.support.forms import example

CHUNK = 5000


def populate(settings: Settings, count: int) -> int:
    """Write ``count`` open requirement confirmations; return the number of events."""
    form = example("requirement_confirmation")
    members = [asdict(Member("requester", 1, None, "zhangwei", "requester")),
               asdict(Member("receiver", 2, None, "lina", "receiver"))]
    start = datetime(2026, 1, 1, tzinfo=UTC)
    written = 0
    with database.connection(settings.database) as conn:
        for chunk_start in range(0, count, CHUNK):
            events, projections = [], []
            for index in range(chunk_start, min(count, chunk_start + CHUNK)):
                document_id = f"doc-{index:08d}"
                created = ledger.new_event(document_id, "created", "bench", {
                    "template": "requirement_confirmation", "template_version": 1,
                    "number": f"2026-市场-{index + 1:06d}", "form": form, "members": members})
                # Spread creation times so that due times (and urgency) differ.
                created["at"] = (start + timedelta(minutes=index % 50000)).isoformat()
                rendered = ledger.new_event(document_id, "rendered", "bench",
                                            revision_after=f"{index:064x}")
                prepared = ledger.new_event(document_id, "prepared", "bench",
                                            revision_before=f"{index:064x}",
                                            revision_after=f"{index + 1:064x}")
                prepared["at"] = created["at"]
                batch = [created, rendered, prepared]
                events += batch
                projections.append(projection(fold([{**e, "seq": 0} for e in batch])))
            ledger.append(conn, events, projection=projections)
            written += len(events)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--documents", type=int, default=100_000)
    args = parser.parse_args()
    settings = Settings(data_dir=Path(tempfile.mkdtemp(prefix="countersign-bench-ledger-")))
    started = time.perf_counter()
    events = populate(settings, args.documents)
    print(f"{args.documents} open documents, {events} events written in "
          f"{time.perf_counter() - started:.1f} s "
          f"({events / (time.perf_counter() - started):,.0f} events/s appended)")

    urgent_s, urgent = median_timed(lambda: blocking_documents(settings, limit=100), 20)
    with database.connection(settings.database) as conn:
        count_s, count = median_timed(lambda: database.count_open_documents(conn), 20)
    print(f"blocking --limit 100        {1000 * urgent_s:8.1f} ms  (median of 20; "
          f"{len(urgent)} documents, target <= 50 ms)")
    print(f"count of open documents     {1000 * count_s:8.1f} ms  ({count})")
    all_s, everything = median_timed(lambda: blocking_documents(settings), 3)
    print(f"blocking (all)              {1000 * all_s:8.1f} ms  ({len(everything)} documents)")

    def verify():
        return ledger.verify_ledger(settings.database)

    verify_s, report = median_timed(verify, 5)
    assert report.ok and report.events == events, report.problems[:3]
    print(f"ledger verify (chain)       {verify_s:8.2f} s   "
          f"({report.events / verify_s:,.0f} events/s, target >= 200,000)")


if __name__ == "__main__":
    main()
