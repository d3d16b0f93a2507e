"""The record layer on both backends: schema migrations, chain appends from many processes
at once, and a database that does not answer."""

from __future__ import annotations

import multiprocessing
import sqlite3
import subprocess
from datetime import date, timedelta

import pytest

from pipeline.record import database, ledger
from pipeline.record.engine import HEAD_REVISION, migrate
from tests.support.cli import COUNTERSIGN
from tests.support.sql import sql

# The schema an SQLite database had before Alembic (the first released version's tables,
# before documents gained request_key, next_due, state and open).
EARLY_SCHEMA = """
CREATE TABLE number_sequences (scope TEXT PRIMARY KEY, last INTEGER NOT NULL);
CREATE TABLE events (seq INTEGER PRIMARY KEY AUTOINCREMENT, document_id TEXT NOT NULL,
    kind TEXT NOT NULL, actor TEXT NOT NULL, at TEXT NOT NULL, revision_before TEXT,
    revision_after TEXT, data TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL UNIQUE);
CREATE TABLE documents (id TEXT PRIMARY KEY, template TEXT NOT NULL, number TEXT NOT NULL,
    status TEXT NOT NULL, head_revision TEXT, updated_at TEXT NOT NULL);
CREATE TABLE api_tokens (token_sha256 TEXT PRIMARY KEY, role TEXT NOT NULL, party TEXT,
    label TEXT NOT NULL, created_at TEXT NOT NULL);
"""


def _append(target: str, worker: int, count: int) -> None:
    for i in range(count):
        with database.connection(target) as conn:
            ledger.append(conn, [ledger.new_event(f"doc-{worker}", "progress-entry",
                                                  f"worker-{worker}", {"i": i})])


def test_an_early_sqlite_database_is_adopted_and_keeps_its_history(tmp_path):
    path = tmp_path / "countersign.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(EARLY_SCHEMA)
        previous = ledger.GENESIS
        for seq in (1, 2, 3):
            record = {"seq": seq, "document_id": "doc-old", "kind": "created", "actor": "cli",
                      "at": "2024-05-20T00:00:00+00:00", "revision_before": None,
                      "revision_after": None, "data": "{}", "prev_hash": previous}
            record["hash"] = previous = ledger.event_hash(record)
            conn.execute("INSERT INTO events VALUES (:seq, :document_id, :kind, :actor, :at, "
                         ":revision_before, :revision_after, :data, :prev_hash, :hash)", record)
        conn.execute("DELETE FROM events WHERE seq = 3")  # the newest event, deleted
    assert migrate(str(path)) == (None, HEAD_REVISION)
    columns = {row[1] for row in sql(path, "PRAGMA table_info(documents)")}
    assert {"request_key", "next_due", "state", "open"} <= columns
    report = ledger.verify_ledger(path)
    # The deletion from before the migration is still seen: the high-water mark came over.
    assert report.problems == ["最后的事件 3–3 被删除 / the last events 3..3 were deleted"]
    assert migrate(str(path)) == (HEAD_REVISION, HEAD_REVISION)


def test_appends_from_many_processes_form_one_chain(database_target):
    database.connect(database_target).close()
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_append, args=(database_target, n, 25))
               for n in range(6)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
        assert worker.exitcode == 0
    report = ledger.verify_ledger(database_target)
    assert report.ok, report.problems
    assert report.events == 150
    seqs = [row[0] for row in sql(database_target, "SELECT seq FROM events ORDER BY seq")]
    assert seqs == list(range(1, 151))


def test_a_stale_head_writes_nothing(database_target):
    with database.connection(database_target) as conn:
        ledger.append(conn, [ledger.new_event("doc-1", "created", "cli")],
                      projection={"id": "doc-1", "template": "t", "number": "1",
                                  "status": "open", "head_revision": "aaa", "updated_at": "t"})
        with pytest.raises(database.HeadMoved) as moved:
            ledger.append(conn, [ledger.new_event("doc-1", "signed", "lina")],
                          expect_head="bbb", check_head=True)
        assert moved.value.current == "aaa"
        assert [e["kind"] for e in database.select_events(conn)] == ["created"]
        assert database.highest_event_seq(conn) == 1


@pytest.mark.slow
def test_an_unreachable_database_is_one_line_and_exit_one(tmp_path):
    env = {"COUNTERSIGN_DATABASE_URL": "postgresql://postgres@127.0.0.1:9/nowhere",
           "PATH": "/usr/bin:/bin"}
    result = subprocess.run([COUNTERSIGN, "--data-dir", str(tmp_path), "parties", "list"],
                            capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "the database is unavailable" in result.stderr and "port 9" in result.stderr


@pytest.mark.slow
def test_two_servers_claiming_the_outbox_at_once_never_share_a_message(postgres_database,
                                                                       monkeypatch):
    from pipeline.record import outbox

    now, lease = "2026-01-01T00:00:00", "2026-01-01T00:05:00"
    with database.connection(postgres_database) as first, \
            database.connection(postgres_database) as second:
        outbox.queue_messages(first, [{"channel": "mail", "payload": {"n": n},
                                       "created_at": now} for n in range(3)])
        taken_first: list[dict] = []
        real_run = outbox.run

        def interleaved(conn, sql, params=None):
            result = real_run(conn, sql, params)
            # The second server has read the due rows; the first claims them and commits.
            if conn is second and sql.startswith("SELECT") and not taken_first:
                taken_first.extend(outbox.claim_due(first, "mail", now, lease))
            return result

        monkeypatch.setattr(outbox, "run", interleaved)
        taken_second = outbox.claim_due(second, "mail", now, lease)
    assert len(taken_first) == 3
    assert taken_second == []


@pytest.mark.slow
def test_a_number_being_recorded_is_not_given_again(postgres_database, monkeypatch):
    from pipeline.forms.manifest import get_template
    from pipeline.forms.numbering import record_number, reserve_number
    from tests.support.forms import example

    template, form = get_template("requirement_confirmation"), example("requirement_confirmation")
    today = date(2024, 5, 20)
    with database.connection(postgres_database) as first, \
            database.connection(postgres_database) as second:
        late = reserve_number(first, template, form, today, lease=timedelta(0))
        real_run = database.run

        def interleaved(conn, sql, params=None):
            result = real_run(conn, sql, params)
            # The second creation has found the expired number; the first records it now.
            if conn is second and sql.startswith("SELECT seq FROM number_reservations"):
                with database.transaction(first):
                    record_number(first, late, "doc-late")
            return result

        monkeypatch.setattr(database, "run", interleaved)
        taken = reserve_number(second, template, form, today)
    assert taken.number != late.number
    assert sql(postgres_database, "SELECT used_by FROM number_reservations WHERE seq = :seq",
               {"seq": late.seq}) == [("doc-late",)]
