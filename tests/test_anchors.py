"""Anchored ledger head: RFC 3161 tokens over the chain head, from the local CA's TSA.

The attack these tests perform is the one the hash chain alone cannot see: someone with
write access to the database rewrites an event and re-hashes every event after it."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from pipeline.config import Settings
from pipeline.documents.repository import verify_ledger
from pipeline.record import database, ledger
from pipeline.record.anchors import (
    ChainBroken,
    anchor_due,
    anchor_head,
    anchor_if_due,
    anchor_path,
)
from pipeline.record.backends import open_store
from pipeline.signing_setup import local_ca as open_local_ca
from signing.ca import LocalCA
from signing.timestamps import check_timestamp_tokens, timestamp_digest
from tests.support.cli import COUNTERSIGN
from tests.support.s3 import s3_client, s3_settings
from tests.support.sql import sql


@pytest.fixture(scope="module")
def local_ca(tmp_path_factory) -> Path:
    """One local CA for the module (making one costs seconds), copied into each data folder."""
    folder = tmp_path_factory.mktemp("anchors") / "ca"
    LocalCA.create(folder)
    return folder


@pytest.fixture
def with_ca(local_ca):
    """Return a function giving a data folder the module's local CA (and its TSA): copied
    where an older data folder kept it, the application moves it into the store (a shared
    one under the passphrase that was kept beside it, as an operator moving it would)."""
    def give(settings: Settings) -> Settings:
        shutil.copytree(local_ca, settings.ca_dir)
        if not settings.store_url:
            return settings
        kept = (local_ca / "passphrase").read_text(encoding="utf-8")
        return replace(settings, ca_passphrase=kept)
    return give
    return give


@pytest.fixture
def settings(tmp_path, with_ca) -> Settings:
    # Anchors only when a test makes one: the automatic rules are tested on their own.
    return with_ca(Settings(data_dir=tmp_path / "data", anchor_every_events=0,
                            anchor_every_minutes=0))


def add_events(settings: Settings, count: int) -> None:
    with database.connection(settings.database) as conn:
        ledger.append(conn, [ledger.new_event("doc-anchored", "progress-entry", "zhangwei",
                                              {"text": f"entry {i}"}) for i in range(count)])


def rewrite_and_rehash(settings: Settings, seq: int, **changes: str) -> None:
    """Change event ``seq`` and re-hash it and every event after it: a chain that verifies."""
    target = settings.database
    previous = sql(target, "SELECT hash FROM events WHERE seq = :seq", {"seq": seq - 1})
    previous = previous[0][0] if previous else ledger.GENESIS
    rows = sql(target, f"SELECT {', '.join(database.EVENT_COLUMNS)} FROM events "
                       "WHERE seq >= :seq ORDER BY seq", {"seq": seq})
    for row in rows:
        record = dict(zip(database.EVENT_COLUMNS, row, strict=True))
        if record["seq"] == seq:
            record.update(changes)
        record["prev_hash"] = previous
        record["hash"] = previous = ledger.event_hash(record)
        sql(target, "UPDATE events SET actor = :actor, data = :data, prev_hash = :prev_hash, "
                    "hash = :hash WHERE seq = :seq", record)


def event_hash_at(settings: Settings, seq: int) -> str:
    return sql(settings.database, "SELECT hash FROM events WHERE seq = :seq", {"seq": seq})[0][0]


def replace_token(settings: Settings, seq: int, token: bytes) -> None:
    sql(settings.database, "UPDATE ledger_anchors SET token = :token WHERE seq = :seq",
        {"token": token, "seq": seq})


def test_the_head_is_anchored_once_and_kept_in_database_and_store(settings):
    assert anchor_head(settings) is None  # nothing to anchor yet
    add_events(settings, 5)
    anchor = anchor_head(settings)
    assert (anchor.seq, anchor.new) == (5, True)
    assert anchor.head_hash == event_hash_at(settings, 5)
    assert anchor_head(settings).new is False  # the same head: the same anchor
    with database.connection(settings.database) as conn:
        (row,) = database.select_anchors(conn)
    stored = open_store(settings).archived("ledger-anchors")
    assert stored == {anchor_path(5): row["token"]}
    add_events(settings, 3)
    report = verify_ledger(settings)
    assert report.ok, report.problems
    assert (report.anchors, report.anchored_through, report.unanchored) == (1, 5, 3)


@pytest.fixture
def anchored(settings) -> Settings:
    """Twelve events, anchored at 5 and at 10."""
    add_events(settings, 5)
    anchor_head(settings)
    add_events(settings, 5)
    anchor_head(settings)
    add_events(settings, 2)
    assert verify_ledger(settings).ok
    return settings


def test_a_rewritten_and_rehashed_chain_is_detected(anchored):
    rewrite_and_rehash(anchored, 7, actor="mallory")
    chain_only = ledger.verify_ledger(anchored.database)
    assert chain_only.ok  # the attack the chain alone cannot see
    report = verify_ledger(anchored)
    assert not report.ok and report.anchored_through == 5
    assert report.problems == [
        report.problems[0]]  # one finding, naming where the rewrite lies
    assert "the chain was rewritten: event 10 no longer matches its anchor" in report.problems[0]
    assert "the last anchor that still holds is event 5" in report.problems[0]
    assert "the first divergence lies in events 6..10" in report.problems[0]

    result = subprocess.run([COUNTERSIGN, "--data-dir", str(anchored.data_dir), "ledger",
                             "verify", "--json"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    verdict = json.loads(result.stdout)
    assert verdict["ok"] is False and verdict["anchored_through"] == 5
    assert "events 6..10" in verdict["problems"][0]


def test_a_forged_anchor_token_is_refused(anchored, tmp_path):
    rewrite_and_rehash(anchored, 7, actor="mallory")
    # The attacker's own TSA (a CA of its own, timeStamping usage and all) vouches for the
    # rewritten head in the database; the genuine token is still in the store.
    mallory = LocalCA.create(tmp_path / "mallory-ca").timestamp_authority()
    forged = timestamp_digest(mallory, bytes.fromhex(event_hash_at(anchored, 10)))
    replace_token(anchored, 10, forged)
    problems = verify_ledger(anchored).problems
    assert any("the anchor of event 10 (database) is refused" in p
               and "untrusted timestamp authority" in p for p in problems), problems
    assert any("first divergence lies in events 6..10" in p for p in problems), problems

    # A genuine token whose imprint is edited to the rewritten hash: its signature breaks.
    with database.connection(anchored.database) as conn:
        genuine = next(a for a in database.select_anchors(conn) if a["seq"] == 5)["token"]
    old, new = bytes.fromhex(event_hash_at(anchored, 5)), bytes.fromhex("00" * 32)
    replace_token(anchored, 5, bytes(genuine).replace(old, new))
    sql(anchored.database, "UPDATE events SET hash = :hash WHERE seq = 5", {"hash": "00" * 32})
    problems = verify_ledger(anchored).problems
    assert any("the anchor of event 5 (database) is refused" in p
               and "forged or altered" in p for p in problems), problems


def test_every_token_is_verified_even_once_its_tsa_is_known(settings, tmp_path):
    ca = open_local_ca(settings)
    head, other = hashlib.sha256(b"head").digest(), hashlib.sha256(b"other").digest()
    genuine = timestamp_digest(ca.timestamp_authority(), head)
    edited = genuine.replace(head, other)  # the imprint moved to another head
    forged = timestamp_digest(LocalCA.create(tmp_path / "mallory").timestamp_authority(), other)
    checks = check_timestamp_tokens([(genuine, head), (edited, other), (forged, other),
                                     (b"junk", head), (genuine, other)], ca.trust())
    assert [c.valid for c in checks] == [True, False, False, False, False]
    # The second token comes from a TSA already validated: its signature is still checked.
    assert checks[1].matches and not checks[1].authentic
    assert checks[2].authentic and not checks[2].trusted
    assert not checks[3].readable
    assert checks[4].authentic and checks[4].trusted and not checks[4].matches


def test_deleting_anchor_rows_hides_nothing(anchored):
    rewrite_and_rehash(anchored, 3, data=json.dumps({"text": "rewritten"}))
    sql(anchored.database, "DELETE FROM ledger_anchors")
    problems = verify_ledger(anchored).problems
    assert any("the anchor of event 5 is missing from the database (the store still holds "
               "it)" in p for p in problems)
    assert any("first divergence lies in events 1..5" in p for p in problems), problems


def test_a_broken_chain_is_not_anchored(settings):
    add_events(settings, 3)
    sql(settings.database, "UPDATE events SET actor = 'mallory' WHERE seq = 2")
    with pytest.raises(ChainBroken, match="events 1..3 does not verify"):
        anchor_head(settings)
    with database.connection(settings.database) as conn:
        assert database.select_anchors(conn) == []


def test_anchors_are_made_every_n_events_or_t_minutes(tmp_path, with_ca):
    every_three = with_ca(Settings(data_dir=tmp_path / "a", anchor_every_events=3,
                                   anchor_every_minutes=0))
    add_events(every_three, 2)
    assert not anchor_due(every_three) and anchor_if_due(every_three) is None
    add_events(every_three, 1)
    assert anchor_due(every_three)
    assert anchor_if_due(every_three).seq == 3
    assert not anchor_due(every_three)

    hourly = with_ca(Settings(data_dir=tmp_path / "b", anchor_every_events=0,
                              anchor_every_minutes=60))
    add_events(hourly, 1)
    now = datetime.now(UTC)
    assert not anchor_due(hourly, now)
    assert anchor_due(hourly, now + timedelta(minutes=61))


def test_ledger_anchor_command(settings):
    add_events(settings, 4)
    run = [COUNTERSIGN, "--data-dir", str(settings.data_dir), "ledger", "anchor"]
    made = subprocess.run([*run, "--json"], capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout) | {"timestamped_at": None, "token_sha256": None} == {
        "seq": 4, "head_hash": event_hash_at(settings, 4), "new": True,
        "timestamped_at": None, "token_sha256": None}
    again = subprocess.run(run, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and "event 4" in again.stdout and "already" in again.stdout


def test_a_crash_between_store_and_database_is_repaired_by_the_next_anchor(settings):
    add_events(settings, 3)
    run = [COUNTERSIGN, "--data-dir", str(settings.data_dir), "ledger", "anchor"]
    killed = subprocess.run(run, capture_output=True, text=True, timeout=120,
                            env={**os.environ, "COUNTERSIGN_CRASH_AT": "anchor:after-store"})
    assert killed.returncode == -signal.SIGKILL
    assert open_store(settings).archived("ledger-anchors") != {}
    add_events(settings, 2)
    anchor = anchor_head(settings)
    assert anchor.seq == 5
    with database.connection(settings.database) as conn:
        assert [a["seq"] for a in database.select_anchors(conn)] == [3, 5]
    report = verify_ledger(settings)
    assert report.ok, report.problems
    assert (report.anchors, report.anchored_through) == (2, 5)


@pytest.mark.slow
def test_anchor_tokens_are_locked_in_s3(tmp_path, s3_endpoint, with_ca):
    settings = with_ca(s3_settings(tmp_path / "data", s3_endpoint))
    open_store(settings).prepare()
    add_events(settings, 2)
    anchor_head(settings)
    store = open_store(settings)
    key = store.prefix + anchor_path(2)
    attacker = s3_client(s3_endpoint)
    head = attacker.head_object(Bucket=store.bucket, Key=key)
    assert head["ObjectLockMode"] == "COMPLIANCE"
    assert head["ObjectLockRetainUntilDate"] > datetime.now(UTC) + timedelta(days=365 * 9)
    with pytest.raises(ClientError, match="AccessDenied"):
        attacker.delete_object(Bucket=store.bucket, Key=key, VersionId=head["VersionId"])
    # Hidden behind a delete marker and removed from the database, the anchor still counts.
    attacker.delete_object(Bucket=store.bucket, Key=key)
    rewrite_and_rehash(settings, 1, actor="mallory")
    sql(settings.database, "DELETE FROM ledger_anchors")
    problems = verify_ledger(settings).problems
    assert any("first divergence lies in events 1..2" in p for p in problems), problems
