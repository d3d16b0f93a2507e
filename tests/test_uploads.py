"""Countersigned uploads: a party signs with pyHanko directly (outside the project's code)
and uploads; anything else is refused with its reason, recorded, and changes nothing."""

from __future__ import annotations

import io
import json
import subprocess

import pytest
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

from pipeline.config import Settings
from pipeline.documents.create import create_document
from pipeline.documents.repository import document_status, download_revision
from pipeline.documents.uploads import UploadRejected, read_upload, upload_countersigned
from pipeline.errors import NotYourTurn
from pipeline.signing_setup import signing_environment
from signing.validation import validate_pdf
from tests.support.cli import COUNTERSIGN
from tests.support.data import initialised
from tests.support.external import external_sign
from tests.support.forms import example
from tests.support.sql import sql


@pytest.fixture(scope="module")
def settings(tmp_path_factory) -> Settings:
    return initialised(tmp_path_factory.mktemp("uploads") / "data")


@pytest.fixture
def document(settings, pool):
    """A requirement confirmation the requester signed server-side; the receiver is next."""
    from pipeline.documents.sign import sign_document

    doc = create_document(settings, "requirement_confirmation",
                          example("requirement_confirmation"),
                          [("requester", "zhangwei"), ("receiver", "lina")], pool).id
    sign_document(settings, doc, "zhangwei", "demo")
    return doc


def rejections(settings: Settings, doc: str) -> list[dict]:
    rows = sql(settings.database, "SELECT data FROM events WHERE document_id = :doc AND kind "
                                  "= 'upload-rejected' ORDER BY seq", {"doc": doc})
    return [json.loads(row[0]) for row in rows]


@pytest.mark.slow
def test_a_pdf_signed_in_another_tool_is_accepted(settings, document):
    current = download_revision(settings, document)
    signed = external_sign(settings, current, "lina", "receiver")
    status = upload_countersigned(settings, document, "lina", signed)
    assert status.status == "completed"
    assert [s.party for s in status.signed] == ["zhangwei", "lina"]
    report = validate_pdf(download_revision(settings, document),
                          signing_environment(settings).trust)
    assert report.valid and [s.field for s in report.signatures] == ["requester", "receiver"]


def refuse(settings, doc, party, data, reason):
    before = document_status(settings, doc)
    with pytest.raises(UploadRejected, match=reason):
        upload_countersigned(settings, doc, party, data)
    after = document_status(settings, doc)
    assert after.revision == before.revision and after.signed == before.signed
    recorded = rejections(settings, doc)[-1]
    assert recorded["party"] == party and reason.split("(")[0] in recorded["reason_en"]
    return recorded


@pytest.mark.slow
def test_signed_with_someone_elses_key_is_refused(settings, document):
    current = download_revision(settings, document)
    forged = external_sign(settings, current, "zhaomin", "receiver")
    refuse(settings, document, "lina", forged, "does not belong to lina")


@pytest.mark.slow
def test_signature_in_another_field_is_refused(settings, pool):
    from pipeline.documents.sign import sign_document

    form = example("progress_sync")
    form["support_requests"].append({"dept": "产品部", "content": "评审", "due": "2024-05-26"})
    doc = create_document(settings, "progress_sync", form,
                          [("responsible", "wangqiang"), ("supporter", "zhaomin"),
                           ("supporter", "lina")], pool).id
    sign_document(settings, doc, "wangqiang", "demo")
    wrong_field = external_sign(settings, download_revision(settings, doc), "lina",
                                "supporter-1")
    refuse(settings, doc, "lina", wrong_field, "not lina's field 'supporter-2'")


@pytest.mark.slow
def test_reupload_of_an_existing_revision_is_refused(settings, document):
    refuse(settings, document, "lina", download_revision(settings, document),
           "a revision the document already has")
    refuse(settings, document, "lina", download_revision(settings, document, 1),
           "a revision the document already has")


@pytest.mark.slow
def test_content_added_after_the_signature_is_refused(settings, document):
    signed = external_sign(settings, download_revision(settings, document), "lina",
                           "receiver")
    writer = IncrementalPdfFileWriter(io.BytesIO(signed))
    page = writer.root["/Pages"]["/Kids"][0]
    note = generic.DictionaryObject({
        generic.NameObject("/Type"): generic.NameObject("/Annot"),
        generic.NameObject("/Subtype"): generic.NameObject("/Text"),
        generic.NameObject("/Rect"): generic.ArrayObject([generic.FloatObject(v)
                                                          for v in (10, 10, 30, 30)]),
        generic.NameObject("/Contents"): generic.TextStringObject("已付款"),
    })
    page["/Annots"] = generic.ArrayObject([writer.add_object(note)])
    writer.update_container(page)
    out = io.BytesIO()
    writer.write(out)
    refuse(settings, document, "lina", out.getvalue(), "does not cover the whole file")


@pytest.mark.slow
def test_untimestamped_signature_is_refused(settings, document):
    bare = external_sign(settings, download_revision(settings, document), "lina", "receiver",
                         timestamp=False)
    refuse(settings, document, "lina", bare, "no RFC 3161 timestamp")


@pytest.mark.slow
@pytest.mark.parametrize("make, reason", [
    (lambda head: b"", "not a PDF file"),
    (lambda head: b"GIF89a not a pdf", "not a PDF file"),
    (lambda head: head[: len(head) // 2], "a revision the document already has|does not begin"),
    (lambda head: head + b"garbage that is not a signature", "exactly one signature"),
])
def test_malformed_uploads_are_refused(settings, document, make, reason):
    head = download_revision(settings, document)
    with pytest.raises(UploadRejected, match=reason):
        upload_countersigned(settings, document, "lina", make(head))
    assert document_status(settings, document).signed[0].party == "zhangwei"


def test_oversized_upload_is_refused_before_it_is_read(tmp_path):
    big = tmp_path / "big.pdf"
    with big.open("wb") as handle:
        handle.seek(2_000_000)
        handle.write(b"\0")
    with pytest.raises(UploadRejected, match="too large"):
        read_upload(big, limit=1_000_000)


@pytest.mark.slow
def test_not_your_turn(settings, document):
    with pytest.raises(NotYourTurn):
        upload_countersigned(settings, document, "zhangwei",
                             download_revision(settings, document))


@pytest.mark.slow
def test_cli_upload(settings, document, tmp_path):
    signed = tmp_path / "signed.pdf"
    signed.write_bytes(external_sign(settings, download_revision(settings, document), "lina",
                                     "receiver"))
    base = [COUNTERSIGN, "--data-dir", str(settings.data_dir)]
    wrong = subprocess.run([*base, "upload", document, str(signed), "--as", "zhaomin"],
                           capture_output=True, text=True, timeout=120)
    assert wrong.returncode == 2 and "not a party" in wrong.stderr
    ok = subprocess.run([*base, "upload", document, str(signed), "--as", "lina", "--json"],
                        capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["status"] == "completed"
