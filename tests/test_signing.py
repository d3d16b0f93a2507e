"""Per-party PAdES signatures against a real PKI served by certomancer on loopback."""

from __future__ import annotations

import hashlib
import io
import logging
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from asn1crypto import cms
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import load_der_x509_certificate
from pdfminer.high_level import extract_pages
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.signers import SimpleSigner
from pyhanko_certvalidator.registry import SimpleCertificateStore

from pipeline.forms.manifest import get_template
from signing.appearance import Stamp
from signing.errors import CertificateRefused, SignatureFieldError, TimestampUnavailable
from signing.fields import _lines, find_signature_places, prepare_fields, signature_fields
from signing.fonts import stamp_font
from signing.ltv import add_long_term_validation
from signing.sign import SignatureRequest, sign_pdf
from signing.timestamps import TimestampAuthority
from signing.trust import TrustSettings
from signing.validation import validate_pdf
from tests.support.forms import TEMPLATE_KEYS, example
from tests.support.net import free_port
from tests.support.pdf import rendered_pdf
from tests.support.pki import IMPOSTOR, PARTIES, start_test_pki

# A certomancer PKI served on loopback, and LibreOffice for the documents.
pytestmark = pytest.mark.slow
logging.getLogger("werkzeug").setLevel(logging.ERROR)
CST = timezone(timedelta(hours=8))
ROLE_LABELS = {"requester": "需求方", "receiver": "承接方", "responsible": "责任部门",
               "supporter": "支持部门", "reporter": "问题提出方", "host": "会议主持人",
               "attendee": "参会部门负责人"}


@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    running = start_test_pki(tmp_path_factory.mktemp("pki"))
    yield running
    running.stop()


@pytest.fixture(scope="session")
def font(tmp_path_factory) -> Path:
    return stamp_font(tmp_path_factory.mktemp("fonts"))


@pytest.fixture(scope="session")
def trust(pki) -> TrustSettings:
    return TrustSettings(roots=(pki.root,), other_certs=(pki.intermediate,))


def signer_for(pki, label: str, arch: str | None = None) -> SimpleSigner:
    arch = arch or "countersign-test"
    return SimpleSigner(signing_cert=pki.cert(label, arch), signing_key=pki.key(label, arch),
                        cert_registry=SimpleCertificateStore.from_certs(
                            [pki.cert("interm", arch)]))


def request_for(field: str, label: str, certify: bool) -> SignatureRequest:
    name, dept = PARTIES[label]
    return SignatureRequest(field=field, certify=certify, stamp=Stamp(
        name=name, dept=dept, reason="同意 / Approved", signed_at=datetime.now(CST)))


@pytest.fixture(scope="module")
def progress_three_parties(pool):
    """A progress sync whose three members sign: responsible, then two supporters."""
    form = example("progress_sync")
    form["support_requests"].append({"dept": "产品部", "content": "评审", "due": "2024-05-26"})
    pdf = rendered_pdf(pool, "progress_sync", form)
    return prepare_fields(pdf, find_signature_places(pdf))


def _label_lines(page, label: str):
    """The lines reading ``label`` in the signature block of ``page``, top to bottom."""
    headers = [line for line in _lines(page) if line.get_text().strip() == "签署角色"]
    below = headers[0].bbox[1] if headers else float("inf")
    return sorted((line for line in _lines(page)
                   if line.get_text().strip() == label and line.bbox[3] < below),
                  key=lambda line: -line.bbox[3])


@pytest.mark.parametrize("key", TEMPLATE_KEYS)
def test_each_field_lies_over_its_role_row_on_the_right_page(pool, key):
    pdf = rendered_pdf(pool, key)
    places = find_signature_places(pdf)
    template = get_template(key)
    assert {p.role for p in places} == {r.key for r in template.roles}
    pages = list(extract_pages(io.BytesIO(pdf)))
    for place in places:
        label_lines = _label_lines(pages[place.page], ROLE_LABELS[place.role])
        label = label_lines[(place.member or 1) - 1]
        lx0, ly0, lx1, ly1 = label.bbox
        bx0, by0, bx1, by1 = place.box
        assert bx0 > lx1, (place, label.bbox)            # right of the role's label
        assert by0 < ly0 and by1 > ly1, (place, label.bbox)  # spans the label's line
        assert bx1 - bx0 > 100 and by1 - by0 > 40
    prepared = prepare_fields(pdf, places)
    assert signature_fields(prepared) == {p.field: False for p in places}
    assert prepared.startswith(pdf)  # an incremental update of the rendered PDF


def test_three_parties_sign_in_order_and_earlier_ones_stay_valid(
        progress_three_parties, pki, trust, font):
    pdf = progress_three_parties
    order = [("responsible", "carol"), ("supporter-1", "alice"), ("supporter-2", "bob")]
    tsa = TimestampAuthority(url=pki.tsa_url)
    for index, (field, label) in enumerate(order):
        before = pdf
        pdf = sign_pdf(pdf, request_for(field, label, certify=index == 0),
                       signer_for(pki, label), tsa, trust, font)
        assert pdf.startswith(before)
        report = validate_pdf(pdf, trust)
        assert report.valid, report.as_dict()
        assert [s.field for s in report.signatures] == [f for f, _ in order[: index + 1]]
        assert all(s.timestamp for s in report.signatures)
        assert report.signatures[-1].coverage == "ENTIRE_FILE"
    perms = PdfFileReader(io.BytesIO(pdf)).root["/Perms"]
    assert "/DocMDP" in perms  # the first signature certified the document
    names = [s.signer for s in validate_pdf(pdf, trust).signatures]
    assert names == ["王强 / 研发部", "张伟 / 市场部", "李娜 / 产品部"]


def test_a_field_cannot_be_signed_twice(progress_three_parties, pki, trust, font):
    tsa = TimestampAuthority(url=pki.tsa_url)
    once = sign_pdf(progress_three_parties, request_for("responsible", "carol", True),
                    signer_for(pki, "carol"), tsa, trust, font)
    with pytest.raises(SignatureFieldError, match="already signed"):
        sign_pdf(once, request_for("responsible", "alice", False), signer_for(pki, "alice"),
                 tsa, trust, font)
    with pytest.raises(SignatureFieldError, match="no signature field 'nobody'"):
        sign_pdf(once, request_for("nobody", "alice", False), signer_for(pki, "alice"),
                 tsa, trust, font)


@pytest.mark.parametrize("label, arch, reason", [
    ("dave", None, "revoked"),
    ("erin", None, "expired"),
    ("alice", IMPOSTOR, "does not chain to a trusted root"),
])
def test_bad_certificates_are_refused(progress_three_parties, pki, trust, font, label, arch,
                                      reason):
    impostor = pki.cert(label, arch or "countersign-test")
    assert impostor.subject == pki.cert(label).subject  # same name as the trusted one
    with pytest.raises(CertificateRefused, match=reason):
        sign_pdf(progress_three_parties, request_for("responsible", label, True),
                 signer_for(pki, label, arch), TimestampAuthority(url=pki.tsa_url), trust, font)


def test_unreachable_timestamp_authority_fails_cleanly(progress_three_parties, pki, trust,
                                                       font):
    dead = f"http://127.0.0.1:{free_port()}/tsa"
    with pytest.raises(TimestampUnavailable, match="unavailable"):
        sign_pdf(progress_three_parties, request_for("responsible", "carol", True),
                 signer_for(pki, "carol"), TimestampAuthority(url=dead, timeout_s=2), trust,
                 font)


def test_closed_document_validates_with_the_network_off(pool, tmp_path, font):
    own_pki = start_test_pki(tmp_path / "pki")
    trust = TrustSettings(roots=(own_pki.root,), other_certs=(own_pki.intermediate,))
    tsa = TimestampAuthority(url=own_pki.tsa_url)
    pdf = rendered_pdf(pool, "requirement_confirmation")
    pdf = prepare_fields(pdf, find_signature_places(pdf))
    pdf = sign_pdf(pdf, request_for("requester", "alice", True), signer_for(own_pki, "alice"),
                   tsa, trust, font)
    pdf = sign_pdf(pdf, request_for("receiver", "bob", False), signer_for(own_pki, "bob"),
                   tsa, trust, font)
    closed = add_long_term_validation(pdf, trust, tsa)
    own_pki.stop()  # no OCSP responder, CRL repository or TSA from here on
    report = validate_pdf(closed, trust.offline(), offline=True)
    assert report.valid, report.as_dict()
    assert len(report.signatures) == 2 and len(report.document_timestamps) == 1
    # Without the embedded revocation data the same offline check fails: it is what counts.
    bare = validate_pdf(pdf, trust.offline(), offline=True)
    assert not bare.valid
    assert any("trusted" in p for s in bare.signatures for p in s.problems)


def test_content_added_after_signing_is_reported(progress_three_parties, pki, trust, font):
    signed = sign_pdf(progress_three_parties, request_for("responsible", "carol", True),
                      signer_for(pki, "carol"), TimestampAuthority(url=pki.tsa_url), trust,
                      font)
    writer = IncrementalPdfFileWriter(io.BytesIO(signed))
    page = writer.root["/Pages"]["/Kids"][0]
    extra = generic.StreamObject(stream_data=b"BT /F1 24 Tf 100 700 Td (PAID) Tj ET")
    page["/Contents"] = generic.ArrayObject([page["/Contents"], writer.add_object(extra)]) \
        if not isinstance(page["/Contents"], generic.ArrayObject) \
        else generic.ArrayObject([*page["/Contents"], writer.add_object(extra)])
    writer.update_container(page)
    out = io.BytesIO()
    writer.write(out)
    report = validate_pdf(out.getvalue(), trust)
    assert not report.valid
    assert any("modified after signing" in p for p in report.signatures[0].problems)


def test_changing_a_signed_field_is_reported(progress_three_parties, pki, trust, font):
    tsa = TimestampAuthority(url=pki.tsa_url)
    signed = sign_pdf(progress_three_parties, request_for("responsible", "carol", True),
                      signer_for(pki, "carol"), tsa, trust, font)
    writer = IncrementalPdfFileWriter(io.BytesIO(signed))
    for field_ref in writer.root["/AcroForm"]["/Fields"]:
        field = field_ref.get_object()
        if field["/T"] == "responsible":
            field["/Rect"] = generic.ArrayObject([generic.FloatObject(v) for v in (0, 0, 1, 1)])
            writer.update_container(field)
    out = io.BytesIO()
    writer.write(out)
    report = validate_pdf(out.getvalue(), trust)
    assert not report.valid, report.as_dict()


def test_independent_byte_range_and_digest_check(progress_three_parties, pki, trust, font):
    """Checks the signatures without pyHanko: byte ranges, digests and signature values
    with asn1crypto and cryptography only."""
    tsa = TimestampAuthority(url=pki.tsa_url)
    pdf = sign_pdf(progress_three_parties, request_for("responsible", "carol", True),
                   signer_for(pki, "carol"), tsa, trust, font)
    pdf = sign_pdf(pdf, request_for("supporter-1", "alice", False), signer_for(pki, "alice"),
                   tsa, trust, font)
    ranges = [tuple(map(int, m.groups())) for m in
              re.finditer(rb"/ByteRange\s*\[\s*(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s*\]", pdf)]
    assert len(ranges) == 2
    for start, first, second_start, second in ranges:
        assert start == 0
        contents = pdf[first:second_start]
        assert contents.startswith(b"<") and contents.endswith(b">")
        # The hex string is padded with zeros after the DER structure; load() stops at its end.
        signed_data = cms.ContentInfo.load(bytes.fromhex(contents[1:-1].decode()))["content"]
        signer_info = signed_data["signer_infos"][0]
        attrs = {a["type"].native: a["values"][0] for a in signer_info["signed_attrs"]}
        digest = hashlib.sha256(pdf[:first] + pdf[second_start:second_start + second]).digest()
        assert attrs["message_digest"].native == digest
        sid = signer_info["sid"].chosen  # issuer and serial number identify the signer
        certificate = next(c.chosen for c in signed_data["certificates"]
                           if c.chosen.issuer == sid["issuer"]
                           and c.chosen.serial_number == sid["serial_number"].native)
        public_key = load_der_x509_certificate(certificate.dump()).public_key()
        # The signature covers the signed attributes DER-encoded as a SET (tag 0x31), not
        # with the [0] IMPLICIT tag they carry inside SignerInfo.
        signed_attrs = b"\x31" + signer_info["signed_attrs"].dump()[1:]
        public_key.verify(signer_info["signature"].native, signed_attrs,
                          ec.ECDSA(hashes.SHA256()))
        assert "signature_time_stamp_token" in {
            a["type"].native for a in signer_info["unsigned_attrs"]}
    assert ranges[-1][2] + ranges[-1][3] == len(pdf)  # the last one covers the whole file


def test_enterprise_roots_and_tsa_come_from_configuration(
        tmp_path, pki, progress_three_parties, monkeypatch):
    from asn1crypto import pem

    from pipeline.config import load_settings
    from pipeline.people.setup import initialise
    from pipeline.signing_setup import signing_environment

    roots = tmp_path / "roots.pem"
    roots.write_bytes(pem.armor("CERTIFICATE", pki.root.dump()))
    monkeypatch.setenv("COUNTERSIGN_TRUST_ROOTS", str(roots))
    monkeypatch.setenv("COUNTERSIGN_TSA_URL", pki.tsa_url)
    settings = load_settings(tmp_path / "data")
    initialise(settings)
    # Without an allow-list nothing is fetched: the enterprise certificate's revocation
    # status cannot be checked, so it is refused rather than fetched from where it says.
    env = signing_environment(settings)
    with pytest.raises(CertificateRefused):
        sign_pdf(progress_three_parties, request_for("responsible", "carol", True),
                 signer_for(pki, "carol"), env.tsa, env.trust, env.font)
    monkeypatch.setenv("COUNTERSIGN_FETCH_ALLOW", f"{pki.base_url}/")
    settings = load_settings(tmp_path / "data")
    env = signing_environment(settings)
    assert env.tsa.url == pki.tsa_url
    signed = sign_pdf(progress_three_parties, request_for("responsible", "carol", True),
                      signer_for(pki, "carol"), env.tsa, env.trust, env.font)
    assert validate_pdf(signed, env.trust).valid
    monkeypatch.delenv("COUNTERSIGN_TRUST_ROOTS")
    local_only = signing_environment(load_settings(tmp_path / "data")).trust
    report = validate_pdf(signed, local_only)
    assert not report.valid and not report.signatures[0].trusted
