"""Hostile PDFs, each built here from the project's own signed documents: every one is
refused on upload or reported invalid by verify, with its reason; nothing stored changes;
the process stays up."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.signers import SimpleSigner
from pypdf import PdfReader, PdfWriter

from pipeline.audit.verify import verify_bytes
from pipeline.documents.close import close_document
from pipeline.documents.create import create_document
from pipeline.documents.events import EventKind
from pipeline.documents.repository import (
    append_checked,
    document_status,
    download_revision,
    load_state,
    revision_store,
)
from pipeline.documents.sign import sign_document
from pipeline.documents.uploads import UploadRejected, upload_countersigned
from pipeline.record import ledger
from pipeline.signing_setup import local_ca
from signing.keys import certificate_sha256
from tests.support.corpus import overlay_page, sign
from tests.support.data import initialised, party_p12
from tests.support.external import external_sign
from tests.support.forms import example
from tests.test_uploads import rejections

pytestmark = pytest.mark.slow  # every attack starts from a document LibreOffice rendered
BYTE_RANGE = re.compile(rb"/ByteRange\s*\[\s*(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s*\]")
COUNTERSIGN = str(Path(sys.executable).with_name("countersign"))


@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    return initialised(tmp_path_factory.mktemp("hostile") / "data")


@pytest.fixture
def waiting(settings, pool):
    """A document the requester signed; the receiver (lina) may upload."""
    doc = create_document(settings, "requirement_confirmation",
                          example("requirement_confirmation"),
                          [("requester", "zhangwei"), ("receiver", "lina")], pool).id
    sign_document(settings, doc, "zhangwei", "demo")
    return doc


@pytest.fixture
def good_upload(settings, waiting):
    return external_sign(settings, download_revision(settings, waiting), "lina", "receiver")


def same_length(old: bytes, new: bytes) -> bytes:
    assert len(new) <= len(old)
    return new + b" " * (len(old) - len(new))


def last_byte_range(pdf: bytes) -> re.Match:
    return list(BYTE_RANGE.finditer(pdf))[-1]


def refused(settings, doc, data, pattern):
    before = document_status(settings, doc)
    with pytest.raises(UploadRejected, match=pattern):
        upload_countersigned(settings, doc, "lina", data)
    assert document_status(settings, doc).revision == before.revision
    verdict = verify_bytes(settings, data)
    assert not verdict["valid"]
    return verdict


def rewrite_byte_range(pdf: bytes, values: tuple[int, int, int, int]) -> bytes:
    match = last_byte_range(pdf)
    text = b"/ByteRange [" + b" ".join(str(v).encode() for v in values) + b"]"
    return pdf[:match.start()] + same_length(match.group(0), text) + pdf[match.end():]


def test_byte_range_with_a_gap(settings, waiting, good_upload):
    start, first, second_start, second = map(int, last_byte_range(good_upload).groups())
    gap = rewrite_byte_range(good_upload, (start, first - 10, second_start, second))
    refused(settings, waiting, gap, "not valid|cannot parse|does not cover")


def test_overlapping_byte_range(settings, waiting, good_upload):
    start, first, second_start, second = map(int, last_byte_range(good_upload).groups())
    overlap = rewrite_byte_range(good_upload, (start, first + 10, second_start, second))
    refused(settings, waiting, overlap, "not valid|cannot parse|does not cover")


def test_uncovered_tail_signature_wrapping(settings, waiting, good_upload):
    wrapped = good_upload + b"\n1 0 obj\n<< /Injected true >>\nendobj\n"
    refused(settings, waiting, wrapped, "does not cover the whole file|not valid")


@pytest.mark.parametrize("mutation", ["zero byte range", "remove byte range",
                                      "zero contents", "remove contents"])
def test_universal_signature_forgery(settings, waiting, good_upload, mutation):
    data = good_upload
    if "byte range" in mutation:
        match = last_byte_range(data)
        new = b"/ByteRange [0 0 0 0]" if mutation.startswith("zero") else b""
        data = data[:match.start()] + same_length(match.group(0), new) + data[match.end():]
    else:
        start, first, second_start, _ = map(int, last_byte_range(data).groups())
        contents = data[first:second_start]
        new = b"<" + b"0" * (len(contents) - 2) + b">" if mutation.startswith("zero") else b""
        # /Contents sits just before the hex string: blank the key too when removing it.
        key_at = data.rfind(b"/Contents", 0, first)
        if mutation.startswith("remove"):
            data = data[:key_at] + b" " * (second_start - key_at) + data[second_start:]
        else:
            data = data[:first] + new + data[second_start:]
    refused(settings, waiting, data,
            "not valid|cannot parse|exactly one signature|not lina|does not cover")


def _incremental(base: bytes, change) -> bytes:
    writer = IncrementalPdfFileWriter(io.BytesIO(base))
    change(writer)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _overlay(writer) -> None:
    """Shadow attack, overlay variant: a white box with new text over the page."""
    page = writer.root["/Pages"]["/Kids"][0]
    stream = generic.StreamObject(
        stream_data=b"q 1 1 1 rg 60 600 480 150 re f Q BT /F1 18 Tf 80 680 Td (APPROVED) Tj ET")
    raw = page.raw_get("/Contents")  # keep the references, not the streams they point to
    existing = list(raw) if isinstance(raw, generic.ArrayObject) else [raw]
    page["/Contents"] = generic.ArrayObject([*existing, writer.add_object(stream)])
    writer.update_container(page)


def _replace_content(writer) -> None:
    """Shadow attack, hide-and-replace variant: the page's content swapped for another."""
    page = writer.root["/Pages"]["/Kids"][0]
    page["/Contents"] = writer.add_object(generic.StreamObject(
        stream_data=b"BT /F1 24 Tf 100 700 Td (Replaced) Tj ET"))
    writer.update_container(page)


def _swap_widget_appearance(writer) -> None:
    """Shadow attack, replace-via-form-field variant: a signed field shows something else."""
    for ref in writer.root["/AcroForm"]["/Fields"]:
        field = ref.get_object()
        if field["/T"] == "requester":
            field["/AP"] = generic.DictionaryObject({generic.NameObject("/N"): writer.add_object(
                generic.StreamObject(stream_data=b"0 0 1 rg 0 0 50 20 re f"))})
            writer.update_container(field)


@pytest.mark.parametrize("attack", [_overlay, _replace_content, _swap_widget_appearance])
def test_shadow_attacks_in_the_uploaders_own_revision(settings, waiting, attack):
    """The uploader changes the document in the revision it then signs: its own signature
    covers the change, so it is the earlier signatures that must report it."""
    tampered = _incremental(download_revision(settings, waiting), attack)
    signed = external_sign(settings, tampered, "lina", "receiver")
    refused(settings, waiting, signed, "signature requester is not valid|not valid")


@pytest.mark.parametrize("attack", [_overlay, _replace_content, _swap_widget_appearance])
def test_changes_after_the_last_signature_are_reported(settings, waiting, good_upload,
                                                       attack):
    verdict = verify_bytes(settings, _incremental(good_upload, attack))
    assert not verdict["valid"]
    assert any("modified after signing" in p or "does not cover" in p or "fields changed" in p
               or "suspicious" in p
               for s in verdict["signatures"] for p in s["problems"])


def test_encrypted_pdf(settings, waiting, good_upload):
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(good_upload)))
    writer.encrypt("secret")
    out = io.BytesIO()
    writer.write(out)
    refused(settings, waiting, out.getvalue(), "does not begin|revision")


def test_circular_page_tree_and_broken_xref(settings, waiting, good_upload):
    circular = (b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n"
                b"2 0 obj\n<< /Type /Pages /Kids [2 0 R] /Count 1 >>\nendobj\n"
                b"trailer\n<< /Root 1 0 R >>\n%%EOF\n")
    assert not verify_bytes(settings, circular)["valid"]
    broken_xref = good_upload.replace(b"startxref", b"startxrex")
    refused(settings, waiting, broken_xref, "not valid|cannot parse|exactly one|does not begin")
    truncated = good_upload[: len(good_upload) - 3000]
    refused(settings, waiting, truncated, "not valid|cannot parse|exactly one|cover")


def test_bad_object_stream(settings, waiting):
    from pyhanko.pdf_utils.writer import PdfFileWriter

    writer = PdfFileWriter(stream_xrefs=True)
    stream = writer.prepare_object_stream()
    writer.root[generic.NameObject("/Extra")] = writer.add_object(
        generic.DictionaryObject({generic.NameObject("/Hello"):
                                  generic.TextStringObject("world" * 50)}), obj_stream=stream)
    out = io.BytesIO()
    writer.write(out)
    data = out.getvalue()
    start = data.index(b"stream", data.index(b"/ObjStm")) + 7
    broken = data[:start + 5] + bytes(b ^ 0x55 for b in data[start + 5:start + 30]) + \
        data[start + 30:]
    verdict = verify_bytes(settings, broken)
    assert not verdict["valid"] and verdict["problems"]
    with pytest.raises(UploadRejected):
        upload_countersigned(settings, waiting, "lina", broken)


# --- the first signer's own revision: only the stored previous revision can tell -------------

@pytest.fixture
def unsigned(settings, pool):
    """A requirement confirmation nobody has signed: the requester (zhangwei) is first."""
    return create_document(settings, "requirement_confirmation",
                           example("requirement_confirmation"),
                           [("requester", "zhangwei"), ("receiver", "lina")], pool).id


def forge_first_signature(settings, doc: str) -> bytes:
    """The attack: the first signer downloads the prepared PDF and, in the same incremental
    update as its own genuine, timestamped certification signature, paints a new total over
    page 1. Its signature covers its own revision, so on its own the file verifies."""
    signer = SimpleSigner.load_pkcs12_data(party_p12(settings, "zhangwei"), [], b"demo")
    tsa = local_ca(settings).timestamp_authority().timestamper()
    return sign(download_revision(settings, doc), signer, "requester", timestamper=tsa,
                certify=True, before=overlay_page)


def test_a_first_signer_repainting_page_1_is_refused(settings, unsigned, tmp_path):
    forged = forge_first_signature(settings, unsigned)
    assert verify_bytes(settings, forged)["valid"]  # nothing in the file itself betrays it
    before = document_status(settings, unsigned)
    with pytest.raises(UploadRejected) as caught:
        upload_countersigned(settings, unsigned, "zhangwei", forged)
    message = str(caught.value)
    assert "besides its signature in field requester" in message
    assert "page 1 content changed" in message and "\n" not in message
    assert document_status(settings, unsigned).revision == before.revision
    recorded = rejections(settings, unsigned)[-1]
    assert any("page 1 content changed" in d for d in recorded["details"])
    path = tmp_path / "forged.pdf"
    path.write_bytes(forged)
    cli = [COUNTERSIGN, "--data-dir", str(settings.data_dir), "upload", unsigned, str(path),
           "--as", "zhangwei"]
    result = subprocess.run(cli, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "page 1 content changed" in result.stderr and "Traceback" not in result.stderr
    assert recorded["reason_en"].startswith("besides its signature")


def test_verify_document_catches_a_forged_first_revision_the_ledger_accepted(
        settings, unsigned, pool):
    """Had the forgery been accepted (an older version, a bypassed check), the next party
    signs, the document closes, and verify --document still finds it in the stored
    revisions."""
    forged = forge_first_signature(settings, unsigned)
    state = load_state(settings, unsigned)
    digest = revision_store(settings).put(forged)
    cert = PdfFileReader(io.BytesIO(forged)).embedded_signatures[0].signer_cert
    append_checked(settings, state, [ledger.new_event(
        unsigned, EventKind.UPLOAD_ACCEPTED, "zhangwei",
        {"field": "requester", "role": "requester", "party": "zhangwei",
         "certificate_sha256": certificate_sha256(cert)},
        revision_before=state.head_revision, revision_after=digest)])
    sign_document(settings, unsigned, "lina", "demo")
    close_document(settings, unsigned, pool)
    cli = [COUNTERSIGN, "--data-dir", str(settings.data_dir), "verify", "--document",
           unsigned, "--json"]
    result = subprocess.run(cli, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1 and result.stderr == ""
    verdict = json.loads(result.stdout)
    assert not verdict["valid"] and verdict["indication"] == "TOTAL_FAILED"
    assert any("upload-accepted by zhangwei" in p and "page 1 content changed" in p
               for p in verdict["problems"]), verdict["problems"]
