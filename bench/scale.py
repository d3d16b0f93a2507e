"""Benchmark: the scale-out backends (PostgreSQL, S3) against the embedded ones (SQLite, the
filesystem store), side by side in one run.

(1) The same sign/close workload on two running ``countersign serve``: one on PostgreSQL +
    S3 (moto_server on loopback, as the tests start it), one on SQLite + the data folder's
    store. Each round takes a fresh document on each side through ``POST
    /api/documents/{id}/sign`` as the requester, again as the receiver, and ``POST
    /api/documents/{id}/close`` (B-LTA, archive with Object Lock on S3); the sides
    alternate, medians are compared: PostgreSQL+S3 ÷ SQLite.
(2) ``blocking --limit 100`` — the first page of open documents, the most urgent first, as
    ``countersign blocking --limit 100`` and ``GET /api/blocking?limit=100`` give it — over
    100,000 open documents on each backend; and the first page of the API's document list
    (``GET /api/documents``, which filters in Python today).
(3) Chain verification (``ledger verify`` without re-hashing stored files) of the same
    300,000 events on each backend: events/s, once the tables are analysed (as autovacuum
    does after a bulk load; the figure before is printed too).

The 100,000 documents (three events each) are written through the record layer's own
append (``bench/ledger.py``'s ``populate``). PostgreSQL is the machine's at 127.0.0.1:5432,
``COUNTERSIGN_TEST_POSTGRES_URL``'s, or a private cluster started for the run; each
database the run makes is dropped at the end.

    .venv/bin/python bench/scale.py [--documents 100000] [--rounds 8] [--results FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import Row, Server, alternate, median, median_timed, ms, record
from bench.ledger import populate
from pipeline.config import Settings
from pipeline.documents.listing import DocumentQuery, list_documents
from pipeline.documents.repository import blocking_documents
from pipeline.people.access import create_token
from pipeline.people.parties import DEMO_PASSPHRASE
from pipeline.people.setup import initialise
from pipeline.record import database, ledger
from pipeline.record.engine import run
from tests.support.postgres import (
    PostgresUnavailable,
    create_database,
    drop_database,
    find_postgres,
    with_database,
)
from tests.support.s3 import cli_environment, moto_server, s3_settings

FORM = json.loads((ROOT / "examples" / "requirement_confirmation.json")
                  .read_text(encoding="utf-8"))
SIGNERS = ("zhangwei", "lina")  # the requester, then the receiver


@contextlib.contextmanager
def postgres_database(prefix: str) -> Iterator[str]:
    """Yield the URL of a new database on the run's PostgreSQL; drop it afterwards."""
    with find_postgres() as server:
        name = create_database(server, prefix)
        try:
            yield with_database(server, name)
        finally:
            drop_database(server, name)


class Side:
    """One backend's running service, its tokens and the documents waiting for a round."""

    def __init__(self, name: str, settings: Settings, server: Server) -> None:
        self.name, self.settings = name, settings
        self.client = httpx.Client(base_url=server.base, timeout=300)
        self.admin = create_token(settings, "admin")
        self.tokens = {party: create_token(settings, "party", party) for party in SIGNERS}
        self.waiting: list[str] = []

    def create(self, count: int) -> None:
        """Create ``count`` requirement confirmations (untimed: LibreOffice's work)."""
        for _ in range(count):
            response = self.client.post("/api/documents", headers=self.auth(self.admin), json={
                "template": "requirement_confirmation", "data": FORM,
                "parties": [{"role": "requester", "party": SIGNERS[0]},
                            {"role": "receiver", "party": SIGNERS[1]}]})
            assert response.status_code == 201, response.text
            self.waiting.append(response.json()["id"])

    def sign_and_close(self) -> None:
        """The workload of one round: both signatures, then the close."""
        document = self.waiting.pop(0)
        for party in SIGNERS:
            response = self.client.post(f"/api/documents/{document}/sign",
                                        json={"passphrase": DEMO_PASSPHRASE},
                                        headers=self.auth(self.tokens[party]))
            assert response.status_code == 200, response.text
        response = self.client.post(f"/api/documents/{document}/close",
                                    headers=self.auth(self.admin))
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "closed", response.text

    @staticmethod
    def auth(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}


def bench_workload(work: Path, database_url: str, endpoint: str, rounds: int,
                   results: Path | None) -> None:
    """Run (1)."""
    embedded = Settings(data_dir=work / "embedded")
    scaled = s3_settings(work / "scaled", endpoint, bucket="countersign-bench-scale",
                         database_url=database_url)
    for settings in (embedded, scaled):
        initialise(settings)
    scaled_env = {**cli_environment(scaled), "COUNTERSIGN_DATABASE_URL": database_url}
    with Server(embedded.data_dir) as embedded_server, \
            Server(scaled.data_dir, scaled_env) as scaled_server:
        sides = [Side("SQLite + filesystem", embedded, embedded_server),
                 Side("PostgreSQL + S3", scaled, scaled_server)]
        for side in sides:
            side.create(rounds + 1)
            side.sign_and_close()  # the first warms caches on both; not counted
        sqlite_s, postgres_s = alternate(sides[0].sign_and_close, sides[1].sign_and_close,
                                         rounds=rounds)
        for side in sides:
            side.client.close()
    a, b = median(postgres_s), median(sqlite_s)
    print(f"(1) sign, sign, close, {rounds} rounds: PostgreSQL + S3 (moto_server) median "
          f"{ms(a)}; SQLite + filesystem median {ms(b)}")
    record(Row("sign+sign+close: PostgreSQL+S3 ÷ SQLite+filesystem", ms(a), ms(b),
               f"{a / b:.2f}×", "≤ 1.5×", a / b <= 1.5), results)


def bench_scale(work: Path, database_url: str, documents: int, results: Path | None) -> None:
    """Run (2) and (3) on both backends."""
    backends = {"SQLite": Settings(data_dir=work / "ledger-sqlite"),
                "PostgreSQL": replace(Settings(data_dir=work / "ledger-postgres"),
                                      database_url=database_url)}
    found: dict[str, dict[str, float]] = {}
    for name, settings in backends.items():
        started = time.perf_counter()
        events = populate(settings, documents)
        took = time.perf_counter() - started
        print(f"{name}: {documents:,} open documents, {events:,} events written in "
              f"{took:.1f} s ({events / took:,.0f} events/s appended)")
        # Right after a bulk load PostgreSQL's planner has no statistics yet (it expects a
        # few hundred rows and sorts every batch of the chain walk on disk) until autovacuum
        # analyses the table; what it does then, ANALYZE does now, on both sides.
        unanalysed_s, _ = median_timed(lambda s=settings: ledger.verify_ledger(s.database), 1)
        with database.connection(settings.database) as conn:
            run(conn, "ANALYZE")
        print(f"  ledger verify before ANALYZE  {unanalysed_s:8.2f} s   "
              f"({events / unanalysed_s:,.0f} events/s; one pass)")
        first_s, first = median_timed(lambda s=settings: blocking_documents(s, limit=100), 20)
        with database.connection(settings.database) as conn:
            count_s, count = median_timed(lambda c=conn: database.count_open_documents(c), 20)
        listed_s, page = median_timed(lambda s=settings: list_documents(s, DocumentQuery()), 3)
        verify_s, report = median_timed(lambda s=settings: ledger.verify_ledger(s.database), 5)
        assert len(first) == 100 and count == documents and page.total == documents
        assert report.ok and report.events == events, report.problems[:3]
        print(f"  blocking --limit 100          {1000 * first_s:8.1f} ms  (median of 20)")
        print(f"  count of open documents       {1000 * count_s:8.1f} ms  ({count:,})")
        print(f"  GET /api/documents, page 1    {1000 * listed_s:8.1f} ms  (median of 3; "
              f"{len(page.items)} of {page.total:,})")
        print(f"  ledger verify (chain)         {verify_s:8.2f} s   "
              f"({report.events / verify_s:,.0f} events/s)")
        found[name] = {"first": first_s, "listed": listed_s,
                       "verify": report.events / verify_s}
    pg, lite = found["PostgreSQL"], found["SQLite"]
    record(Row(f"blocking --limit 100 over {documents:,} open documents, PostgreSQL",
               ms(pg["first"]), f"{ms(lite['first'])} (SQLite)", ms(pg["first"]), "≤ 50 ms",
               pg["first"] <= 0.050), results)
    record(Row(f"ledger verify, {3 * documents:,} events, PostgreSQL",
               f"{pg['verify']:,.0f} events/s", f"{lite['verify']:,.0f}/s (SQLite)",
               f"{pg['verify']:,.0f}/s", "≥ 200,000/s", pg["verify"] >= 200_000), results)
    print(f"  (GET /api/documents page 1: PostgreSQL {ms(pg['listed'])}, SQLite "
          f"{ms(lite['listed'])}: it reads every stored state; no goal set)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--documents", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--results", type=Path, help="append summary rows here (JSON lines)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="countersign-bench-scale-"))
    try:
        with postgres_database("countersign_bench_scale") as workload_db, \
                postgres_database("countersign_bench_ledger") as ledger_db, \
                moto_server() as endpoint:
            bench_workload(work, workload_db, endpoint, args.rounds, args.results)
            bench_scale(work, ledger_db, args.documents, args.results)
    except PostgresUnavailable as error:
        sys.exit(f"bench/scale.py: PostgreSQL is needed: {error}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
