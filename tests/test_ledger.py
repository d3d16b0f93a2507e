"""The ledger and the document lifecycle, end to end with real conversion and signatures."""

from __future__ import annotations

import json
import subprocess

import pytest

from pipeline.config import Settings
from pipeline.documents.close import close_document
from pipeline.documents.create import create_document
from pipeline.documents.repository import (
    blocking_documents,
    document_status,
    download_revision,
    revision_store,
    verify_ledger,
)
from pipeline.documents.sign import sign_document
from pipeline.documents.steps import mark_action_item_done
from pipeline.errors import (
    BadInput,
    ClosureRefused,
    NotYourTurn,
    ResolutionRequired,
    UnknownDocument,
)
from pipeline.forms.manifest import get_template
from pipeline.people.parties import get_party
from pipeline.signing_setup import signing_environment
from signing.validation import validate_pdf
from tests.support.cli import COUNTERSIGN, environment
from tests.support.forms import example
from tests.support.pdf import pdf_text, squash
from tests.support.sql import sql


@pytest.fixture
def settings(backend_settings: Settings) -> Settings:
    """The ledger's tests run on SQLite and on PostgreSQL."""
    return backend_settings


def open_ids(settings: Settings) -> set[str]:
    return {report.id for report in blocking_documents(settings)}


@pytest.mark.slow
def test_requirement_confirmation_from_create_to_close(settings, pool):
    created = create_document(settings, "requirement_confirmation",
                              example("requirement_confirmation"),
                              [("requester", "zhangwei"), ("receiver", "lina")], pool)
    doc = created.id
    assert created.status == "awaiting_signatures"
    assert created.number.endswith("-市场-001")
    assert [n.party for n in created.next] == ["zhangwei"]
    assert created.next[0].due > created.next[0].since
    assert doc in open_ids(settings)

    with pytest.raises(NotYourTurn, match="not lina's turn yet: waiting for requester zhangwei"):
        sign_document(settings, doc, "lina", "demo")
    with pytest.raises(NotYourTurn, match="not a party"):
        sign_document(settings, doc, "wangqiang", "demo")

    after_first = sign_document(settings, doc, "zhangwei", "demo")
    assert [s.party for s in after_first.signed] == ["zhangwei"]
    assert after_first.signed[0].certificate_sha256 == \
        get_party(settings, "zhangwei").certificate_sha256
    assert [n.party for n in after_first.next] == ["lina"]
    with pytest.raises(NotYourTurn, match="zhangwei has already signed"):
        sign_document(settings, doc, "zhangwei", "demo")

    done = sign_document(settings, doc, "lina", "demo")
    assert done.status == "completed" and done.blocking == [] and done.next == []
    assert doc in open_ids(settings)

    closed = close_document(settings, doc, pool)
    assert closed.status == "closed" and closed.archive
    assert doc not in open_ids(settings)
    assert document_status(settings, doc) == closed

    final = download_revision(settings, doc)
    env = signing_environment(settings)
    report = validate_pdf(final, env.trust.offline(), offline=True)
    assert report.valid and len(report.signatures) == 2 and report.document_timestamps
    assert download_revision(settings, doc, 1).startswith(b"%PDF")
    store = revision_store(settings)
    package = json.loads(store.get(closed.archive))
    assert package["final_pdf"] == closed.revision
    assert package["retention_years"] == 10
    assert package["retain_until"][:4] == str(int(closed.signed[0].signed_at[:4]) + 10)
    for digest in (closed.archive, closed.revision, package["certificate_of_completion"]):
        assert store.is_archived(digest)  # read-only on disk
        assert store.put(store.get(digest)) == digest  # storing again: no-op
    # "sent" records the mail queued in the outbox with the step (here no relay answers).
    assert [e["kind"] for e in package["ledger"]] == [
        "created", "rendered", "prepared", "sent", "signed", "sent", "signed", "closed"]
    certificate = revision_store(settings).get(package["certificate_of_completion"])
    text = pdf_text(certificate)
    assert "完成证明" in text and closed.number in text and closed.revision in text
    flat = squash(pdf_text(certificate, raw=True))
    for event in package["ledger"]:
        assert event["hash"] in flat
    seal = validate_pdf(certificate, env.trust)
    assert seal.valid and seal.signatures[0].signer.startswith("Countersign 系统")
    assert verify_ledger(settings).ok


@pytest.mark.slow
def test_issue_cannot_close_while_result_confirmation_is_empty(settings, pool):
    form = example("issue_tracking")
    form["result_confirmation"] = ""
    doc = create_document(settings, "issue_tracking", form,
                          [("responsible", "wangqiang"), ("reporter", "liuyang")], pool).id
    # The responsible department cannot sign it empty (it resolves first: test_workflows),
    # so the issue can never reach closure without its result.
    with pytest.raises(ResolutionRequired, match="Result confirmation"):
        sign_document(settings, doc, "wangqiang", "demo")
    with pytest.raises(ClosureRefused, match="Result confirmation is still empty"):
        close_document(settings, doc, pool)
    assert document_status(settings, doc).status == "awaiting_signatures"


@pytest.mark.slow
def test_minutes_action_items_block_closure(settings, pool):
    doc = create_document(settings, "meeting_minutes", example("meeting_minutes"),
                          [("host", "zhangwei"), ("attendee", "lina"),
                           ("attendee", "wangqiang")], pool)
    blockers = doc.blocking
    assert any("action item 1 is OVERDUE" in b and "李娜" in b for b in blockers)
    assert any("action item 2 is OVERDUE" in b for b in blockers)


@pytest.mark.slow
def test_parallel_group_signs_in_any_order(settings, pool):
    form = example("progress_sync")
    form["support_requests"].append({"dept": "产品部", "content": "评审", "due": "2024-05-26"})
    doc = create_document(settings, "progress_sync", form,
                          [("responsible", "wangqiang"), ("supporter", "zhangwei"),
                           ("supporter", "lina")], pool).id
    with pytest.raises(NotYourTurn):
        sign_document(settings, doc, "lina", "demo")
    sign_document(settings, doc, "wangqiang", "demo")
    middle = document_status(settings, doc)
    assert {n.party for n in middle.next} == {"zhangwei", "lina"}
    sign_document(settings, doc, "lina", "demo")   # the second member first
    done = sign_document(settings, doc, "zhangwei", "demo")
    assert done.status == "completed"
    assert [s.field for s in done.signed] == ["responsible", "supporter-1", "supporter-2"]
    report = validate_pdf(download_revision(settings, doc), signing_environment(settings).trust)
    assert report.valid and len(report.signatures) == 3


@pytest.mark.slow
@pytest.mark.parametrize("bindings, message", [
    ([("requester", "zhangwei")], "role receiver needs exactly one"),
    ([("requester", "zhangwei"), ("receiver", "nobody")], "unknown party 'nobody'"),
    ([("requester", "zhangwei"), ("receiver", "lina"), ("boss", "lina")], "has no role 'boss'"),
])
def test_bad_bindings_are_refused_before_anything_is_stored(settings, pool, bindings,
                                                            message):
    with pytest.raises(BadInput, match=message):
        create_document(settings, "requirement_confirmation",
                        example("requirement_confirmation"), bindings, pool)
    assert blocking_documents(settings) == []
    assert not (settings.data_dir / "store").exists()


def test_unknown_document(settings):
    with pytest.raises(UnknownDocument):
        document_status(settings, "doc-nope")


@pytest.fixture
def signed_document(settings, pool):
    doc = create_document(settings, "requirement_confirmation",
                          example("requirement_confirmation"),
                          [("requester", "zhangwei"), ("receiver", "lina")], pool).id
    sign_document(settings, doc, "zhangwei", "demo")
    assert verify_ledger(settings).ok
    return doc


@pytest.mark.slow
def test_altered_ledger_row_is_named(settings, signed_document):
    sql(settings.database, "UPDATE events SET actor = 'mallory' WHERE seq = 2")
    report = verify_ledger(settings)
    assert not report.ok
    assert any("event 2 (rendered" in p and "altered" in p for p in report.problems)


@pytest.mark.slow
def test_deleted_ledger_row_is_named(settings, signed_document):
    sql(settings.database, "DELETE FROM events WHERE seq = 3")
    report = verify_ledger(settings)
    assert any("events 3..3 are missing" in p for p in report.problems), report.problems


@pytest.mark.slow
def test_deleted_last_ledger_row_is_named(settings, signed_document):
    [(last,)] = sql(settings.database, "SELECT MAX(seq) FROM events")
    sql(settings.database, "DELETE FROM events WHERE seq = :seq", {"seq": last})
    report = verify_ledger(settings)
    assert any(f"the last events {last}..{last} were deleted" in p for p in report.problems)


@pytest.mark.slow
def test_changed_stored_byte_is_named(settings, signed_document):
    head = document_status(settings, signed_document).revision
    path = revision_store(settings).path(head)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    report = verify_ledger(settings)
    assert report.problems == [f"修订版本 {head} 被改动 / stored revision {head} is altered"]
    result = subprocess.run([COUNTERSIGN, "--data-dir", str(settings.data_dir), "ledger",
                             "verify"], capture_output=True, text=True, timeout=60,
                            env=environment(settings))
    assert result.returncode == 1 and head in result.stderr


@pytest.mark.slow
def test_concurrent_signers_in_separate_processes_fork_nothing(settings, pool):
    form = example("progress_sync")
    form["support_requests"].append({"dept": "产品部", "content": "评审", "due": "2024-05-26"})
    doc = create_document(settings, "progress_sync", form,
                          [("responsible", "wangqiang"), ("supporter", "zhangwei"),
                           ("supporter", "lina")], pool).id
    sign_document(settings, doc, "wangqiang", "demo")
    env = environment(settings, COUNTERSIGN_PASSPHRASE="demo")
    procs = [subprocess.Popen([COUNTERSIGN, "--data-dir", str(settings.data_dir), "sign", doc,
                               "--as", party, "--json"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env)
             for party in ("zhangwei", "lina")]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    final = document_status(settings, doc)
    assert final.status == "completed"
    assert {s.party for s in final.signed} == {"wangqiang", "zhangwei", "lina"}
    rows = sql(settings.database, "SELECT revision_before, revision_after FROM events "
                                  "WHERE document_id = :doc AND revision_after IS NOT NULL "
                                  "ORDER BY seq", {"doc": doc})
    for (_, after), (before, _) in zip(rows[1:], rows[2:], strict=False):
        assert before == after  # one linear history: each revision builds on the last
    report = validate_pdf(download_revision(settings, doc), signing_environment(settings).trust)
    assert report.valid and len(report.signatures) == 3
    assert verify_ledger(settings).ok


@pytest.mark.slow
def test_cli_create_status_blocking(settings, tmp_path):
    form = tmp_path / "form.json"
    form.write_text(json.dumps(example("issue_tracking"), ensure_ascii=False), encoding="utf-8")
    base = [COUNTERSIGN, "--data-dir", str(settings.data_dir)]
    created = subprocess.run([*base, "create", "issue_tracking", "--data", str(form),
                              "--party", "responsible=wangqiang", "--party",
                              "reporter=liuyang", "--json"], capture_output=True, text=True,
                             timeout=120, env=environment(settings))
    assert created.returncode == 0, created.stderr
    payload = json.loads(created.stdout)
    assert {"id", "number", "status"} <= set(payload)
    status = json.loads(subprocess.run([*base, "status", payload["id"], "--json"],
                                       capture_output=True, text=True,
                                       env=environment(settings)).stdout)
    assert {"id", "number", "template", "status", "signed", "next", "blocking"} <= set(status)
    assert status["next"][0]["party"] == "wangqiang"
    # 问题解决不超过3个工作日: the responsible department's due time skips weekends.
    listed = json.loads(subprocess.run([*base, "blocking", "--json"], capture_output=True,
                                       text=True, env=environment(settings)).stdout)
    assert [item["id"] for item in listed] == [payload["id"]]
    bad = subprocess.run([*base, "create", "issue_tracking", "--data", str(form), "--party",
                          "responsible"], capture_output=True, text=True, timeout=60,
                         env=environment(settings))
    assert bad.returncode == 2 and "ROLE=PARTY_ID" in bad.stderr


def _synthetic_ledger(path: str, count: int) -> None:
    from pipeline.record import database, ledger

    with database.connection(path) as conn:
        ledger.append(conn, [ledger.new_event(f"doc-{i % 7}", "progress-entry", "t",
                                              {"i": i}) for i in range(count)])


@pytest.mark.parametrize("tamper, expected", [
    ("UPDATE events SET actor = 'x' WHERE seq = 70", "event 70 (progress-entry of doc-6) was "
     "altered"),
    ("DELETE FROM events WHERE seq = 51", "events 51..51 are missing"),
    ("DELETE FROM events WHERE seq BETWEEN 50 AND 52", "events 50..52 are missing"),
    ("DELETE FROM events WHERE seq = 100", "the last events 100..100 were deleted"),
    ("UPDATE events SET prev_hash = hash WHERE seq = 51", "event 51: previous hash"),
])
def test_parallel_chain_check_finds_tampering_at_segment_edges(database_target, monkeypatch,
                                                               tamper, expected):
    from pipeline.record import ledger

    path = database_target
    _synthetic_ledger(path, 100)
    monkeypatch.setattr(ledger, "PARALLEL_FROM", 10)
    assert ledger.verify_ledger(path, workers=2).ok
    sql(path, tamper)
    report = ledger.verify_ledger(path, workers=2)
    assert any(expected in problem for problem in report.problems), report.problems
    assert report.problems == ledger.verify_ledger(path, workers=1).problems


LIFECYCLES = {
    "requirement_confirmation": [("requester", "zhangwei"), ("receiver", "lina")],
    "progress_sync": [("responsible", "wangqiang"), ("supporter", "zhaomin")],
    "issue_tracking": [("responsible", "wangqiang"), ("reporter", "liuyang")],
    "meeting_minutes": [("host", "zhangwei"), ("attendee", "lina"), ("attendee", "wangqiang"),
                        ("attendee", "zhaomin")],
}


@pytest.mark.slow
@pytest.mark.parametrize("key", list(LIFECYCLES))
def test_each_template_from_create_through_every_signature_to_close(settings, pool, key):
    bindings = LIFECYCLES[key]
    status = create_document(settings, key, example(key), bindings, pool)
    doc = status.id
    roles_in_order = sorted({r.order: r.key for r in get_template(key).roles}.items())
    for _order, role in roles_in_order:
        pending = {n.party for n in status.next}
        expected = {p for r, p in bindings if r == role}
        assert pending == expected, (status.next, role)
        for party in sorted(pending):
            assert doc in open_ids(settings)
            status = sign_document(settings, doc, party, "demo")
            assert party in {s.party for s in status.signed}
            assert all(f"{party} to sign" not in b for b in status.blocking)
    assert status.status == "completed" and status.next == []
    if key == "meeting_minutes":
        assert sum("action item" in b for b in status.blocking) == 2  # still open
        for item in (1, 2):
            status = mark_action_item_done(settings, doc, item, "zhangwei")
    assert status.blocking == []
    closed = close_document(settings, doc, pool)
    assert closed.status == "closed" and doc not in open_ids(settings)
    assert len(closed.signed) == len(bindings)
    assert verify_ledger(settings).ok


def test_years_after_handles_leap_days():
    from datetime import date

    from pipeline.documents.close import years_after

    assert years_after(date(2024, 2, 29), 10) == date(2034, 2, 28)
    assert years_after(date(2026, 11, 27), 5) == date(2031, 11, 27)
