"""A corpus of third-party-style signed PDFs, honest and hostile, made here with pyHanko and
pypdf as other signing tools would make them.

Every sample carries the verdict an auditor should reach (ETSI EN 319 102-1 indication) and
whether it is honest. The PKI is a local CA made for the corpus (with its CRLs), a TSA that
signs RFC 3161 tokens in-process, and a stranger CA nobody trusts: no network anywhere, so
the corpus belongs to the fast tier.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from asn1crypto import algos, cms
from asn1crypto import keys as asn1_keys
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.generic import pdf_name
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.writer import PageObject, PdfFileWriter
from pyhanko.sign import fields, signers
from pyhanko.sign.fields import MDPPerm, SigFieldSpec, SigSeedSubFilter
from pyhanko.sign.signers.cms_embedder import PdfCMSEmbedder, SigIOSetup, SigObjSetup
from pyhanko.sign.signers.pdf_byterange import PdfSignedData
from pyhanko_certvalidator.registry import SimpleCertificateStore

from signing.ca import LocalCA
from signing.keys import to_asn1
from signing.trust import TrustSettings

PASSED, INDETERMINATE, FAILED = "TOTAL_PASSED", "INDETERMINATE", "TOTAL_FAILED"
PAGE_TEXT = b"BT /F1 14 Tf 72 720 Td (Purchase order page %d: total budget 12,000) Tj ET"


@dataclass(frozen=True)
class Sample:
    """One corpus file: what it is, whether it is honest, and the verdict it deserves."""

    name: str
    category: str
    honest: bool
    pdf: bytes
    expect: str
    reason: str = ""  # a word the verdict's problems must contain (hostile samples)


class CorpusPKI:
    """A trusted CA with an RSA and two EC signers and a TSA, plus an untrusted stranger."""

    def __init__(self, folder: Path) -> None:
        self.ca = LocalCA.create(folder / "trusted")
        self.stranger_ca = LocalCA.create(folder / "stranger")

    @cached_property
    def trust(self) -> TrustSettings:
        return self.ca.trust()

    @cached_property
    def tsa(self):
        return self.ca.timestamp_authority().timestamper()

    def signer(self, name: str, *, rsa_key: bool = False, impostor: bool = False,
               cls: type[signers.SimpleSigner] = signers.SimpleSigner) -> signers.SimpleSigner:
        """A signer of the trusted CA; ``impostor``: of a CA that copies its names."""
        ca = self.stranger_ca if impostor else self.ca
        key = (rsa.generate_private_key(public_exponent=65537, key_size=2048) if rsa_key
               else ec.generate_private_key(ec.SECP256R1()))
        issued = ca.issue_party(name, "外部单位", f"{name}@example.net",
                                public_key=key.public_key())
        return _signer(cls, key, issued.certificate, issued.chain)

    def stranger(self, name: str) -> signers.SimpleSigner:
        """A signer under a root nobody configured (its own names, its own keys)."""
        from datetime import UTC, datetime, timedelta

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes
        from cryptography.x509.oid import NameOID

        def dn(common_name: str) -> x509.Name:
            return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Elsewhere Ltd"),
                              x509.NameAttribute(NameOID.COMMON_NAME, common_name)])

        now = datetime.now(UTC) - timedelta(hours=1)
        root_key = ec.generate_private_key(ec.SECP256R1())
        root = (x509.CertificateBuilder().subject_name(dn("Elsewhere Root")).issuer_name(
            dn("Elsewhere Root")).public_key(root_key.public_key()).serial_number(1)
            .not_valid_before(now).not_valid_after(now + timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(root_key, hashes.SHA256()))
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (x509.CertificateBuilder().subject_name(dn(name)).issuer_name(root.subject)
                .public_key(key.public_key()).serial_number(2).not_valid_before(now)
                .not_valid_after(now + timedelta(days=365))
                .add_extension(x509.KeyUsage(True, True, False, False, False, False, False,
                                             False, False), True)
                .sign(root_key, hashes.SHA256()))
        return _signer(signers.SimpleSigner, key, cert, (root,))


def _signer(cls, key, certificate, chain) -> signers.SimpleSigner:
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    return cls(signing_cert=to_asn1(certificate), signing_key=asn1_keys.PrivateKeyInfo.load(der),
               cert_registry=SimpleCertificateStore.from_certs([to_asn1(c) for c in chain]))


# --- documents --------------------------------------------------------------------------

def _text_field(writer: PdfFileWriter, page_ref, name: str, box) -> generic.IndirectObject:
    return writer.add_object(generic.DictionaryObject({
        pdf_name("/FT"): pdf_name("/Tx"), pdf_name("/T"): generic.TextStringObject(name),
        pdf_name("/Type"): pdf_name("/Annot"), pdf_name("/Subtype"): pdf_name("/Widget"),
        pdf_name("/Rect"): generic.ArrayObject(generic.FloatObject(v) for v in box),
        pdf_name("/F"): generic.NumberObject(4), pdf_name("/P"): page_ref,
        pdf_name("/DA"): generic.TextStringObject("/Helv 10 Tf 0 g"),
    }))


def base_document(pages: int = 2, text_fields: tuple[str, ...] = (),
                  sig_fields: tuple[str, ...] = (), user_password: bytes | None = None,
                  flat_sig_field: str | None = None) -> bytes:
    """Return a small PDF as a word processor might: pages of text in Helvetica, optional
    text fields and empty signature fields on page 1 (a dotted name makes a hierarchy;
    ``flat_sig_field`` keeps its periods in one partial name), optionally encrypted."""
    writer = PdfFileWriter()
    font = writer.add_object(generic.DictionaryObject({
        pdf_name("/Type"): pdf_name("/Font"), pdf_name("/Subtype"): pdf_name("/Type1"),
        pdf_name("/BaseFont"): pdf_name("/Helvetica"),
        pdf_name("/Encoding"): pdf_name("/WinAnsiEncoding")}))
    for number in range(1, pages + 1):
        content = writer.add_object(generic.StreamObject(stream_data=PAGE_TEXT % number))
        resources = generic.DictionaryObject({pdf_name("/Font"): generic.DictionaryObject(
            {pdf_name("/F1"): font})})
        writer.insert_page(PageObject(contents=content, media_box=(0, 0, 595, 842),
                                      resources=resources))
    if text_fields or flat_sig_field:
        page_ref = writer.root["/Pages"]["/Kids"].raw_get(0)
        widgets = [_text_field(writer, page_ref, name, (72, 600 - 40 * i, 300, 620 - 40 * i))
                   for i, name in enumerate(text_fields)]
        if flat_sig_field:
            widget = _text_field(writer, page_ref, flat_sig_field, (320, 100, 520, 150))
            widget.get_object()[pdf_name("/FT")] = pdf_name("/Sig")
            del widget.get_object()["/DA"]
            widgets.append(widget)
        writer.root[pdf_name("/AcroForm")] = generic.DictionaryObject({
            pdf_name("/Fields"): generic.ArrayObject(widgets),
            pdf_name("/DA"): generic.TextStringObject("/Helv 10 Tf 0 g")})
        page = page_ref.get_object()
        page[pdf_name("/Annots")] = generic.ArrayObject(widgets)
        writer.update_root()
    for index, name in enumerate(sig_fields):
        fields.append_signature_field(writer, SigFieldSpec(
            sig_field_name=name, on_page=0, box=(320, 100 + 60 * index, 520, 150 + 60 * index)))
    if user_password is not None:
        writer.encrypt(b"owner-secret", user_password)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def incremental(pdf: bytes, change: Callable[[IncrementalPdfFileWriter], None],
                password: bytes | None = None) -> bytes:
    """Return ``pdf`` with one incremental update made by ``change``."""
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf), strict=False)
    if password is not None:
        writer.encrypt(password)
    change(writer)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def sign(pdf: bytes, signer, field: str, *, timestamper=None, certify: bool = False,
         permissions: MDPPerm = MDPPerm.FILL_FORMS, subfilter=SigSeedSubFilter.PADES,
         before: Callable[[IncrementalPdfFileWriter], None] | None = None,
         password: bytes | None = None, new_box=None) -> bytes:
    """Return ``pdf`` signed into ``field`` (made when missing) as another tool would;
    ``before`` changes the document in the same incremental update as the signature."""
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf), strict=False)
    if password is not None:
        writer.encrypt(password)
    if before is not None:
        before(writer)
    meta = signers.PdfSignatureMetadata(field_name=field, md_algorithm="sha256",
                                        subfilter=subfilter, certify=certify,
                                        docmdp_permissions=permissions)
    spec = SigFieldSpec(sig_field_name=field, on_page=0, box=new_box) if new_box else None
    out = signers.PdfSigner(meta, signer, timestamper=timestamper,
                            new_field_spec=spec).sign_pdf(writer)
    return out.getvalue()


def document_timestamp(pdf: bytes, timestamper, field: str = "doc-timestamp",
                       sig_type: str | None = "/DocTimeStamp") -> bytes:
    """Return ``pdf`` with an RFC 3161 document timestamp whose dictionary is typed
    ``sig_type`` (``/DocTimeStamp`` as the standard says, ``/Sig``, or None: untyped)."""
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf), strict=False)
    placeholder = PdfSignedData(obj_type=pdf_name(sig_type or "/Sig"),
                                subfilter=SigSeedSubFilter.ETSI_RFC3161, bytes_reserved=16384)
    if sig_type is None:
        del placeholder["/Type"]
    embedder = PdfCMSEmbedder(new_field_spec=SigFieldSpec(sig_field_name=field)).write_cms(
        field_name=field, writer=writer, existing_fields_only=False)
    next(embedder)
    embedder.send(SigObjSetup(sig_placeholder=placeholder))
    prepared, output = embedder.send(SigIOSetup(md_algorithm="sha256", in_place=False))
    token = asyncio.run(timestamper.async_timestamp(prepared.document_digest, "sha256"))
    embedder.send(token)
    return output.getvalue()


def add_annotation(subtype: str, rect=(400, 700, 420, 720), appearance: bytes | None = None,
                   page: int = 0, **extra) -> Callable[[IncrementalPdfFileWriter], None]:
    """Return a change that adds an annotation (with an optional normal appearance)."""
    def change(writer: IncrementalPdfFileWriter) -> None:
        page_ref = writer.root["/Pages"]["/Kids"].raw_get(page)
        annot = generic.DictionaryObject({
            pdf_name("/Type"): pdf_name("/Annot"), pdf_name("/Subtype"): pdf_name(subtype),
            pdf_name("/Rect"): generic.ArrayObject(generic.FloatObject(v) for v in rect),
            pdf_name("/Contents"): generic.TextStringObject("reviewed"),
            pdf_name("/F"): generic.NumberObject(4), pdf_name("/P"): page_ref,
            **{pdf_name(f"/{k}"): v for k, v in extra.items()}})
        if appearance is not None:
            stream = generic.StreamObject({
                pdf_name("/Type"): pdf_name("/XObject"), pdf_name("/Subtype"): pdf_name("/Form"),
                pdf_name("/BBox"): generic.ArrayObject(
                    generic.FloatObject(v) for v in (0, 0, rect[2] - rect[0], rect[3] - rect[1]))
            }, stream_data=appearance)
            annot[pdf_name("/AP")] = generic.DictionaryObject(
                {pdf_name("/N"): writer.add_object(stream)})
        writer.register_annotation(page_ref, writer.add_object(annot))
    return change


def overlay_page(writer: IncrementalPdfFileWriter, page: int = 0,
                 text: bytes = b"total budget 9,999,999") -> None:
    """Shadow attack, overlay variant: a white box and new text painted over the page."""
    page_obj = writer.root["/Pages"]["/Kids"][page].get_object()
    stream = generic.StreamObject(stream_data=b"q 1 1 1 rg 60 700 480 60 re f Q "
                                  b"BT /F1 14 Tf 72 720 Td (" + text + b") Tj ET")
    raw = page_obj.raw_get("/Contents")
    existing = list(raw) if isinstance(raw, generic.ArrayObject) else [raw]
    page_obj[pdf_name("/Contents")] = generic.ArrayObject([*existing, writer.add_object(stream)])
    writer.update_container(page_obj)


def replace_content(writer: IncrementalPdfFileWriter, page: int = 0) -> None:
    """Shadow attack, hide-and-replace variant: the page's content stream rewritten in place."""
    page_obj = writer.root["/Pages"]["/Kids"][page].get_object()
    ref = page_obj.raw_get("/Contents")
    stream = ref.get_object()
    stream.strip_filters()
    stream._data = b"BT /F1 14 Tf 72 720 Td (total budget 9,999,999) Tj ET"
    stream._encoded_data = None
    writer.mark_update(ref)


def swap_font(writer: IncrementalPdfFileWriter) -> None:
    """The font every page uses is replaced: same text, other glyphs."""
    page_obj = writer.root["/Pages"]["/Kids"][0].get_object()
    font_ref = page_obj["/Resources"].raw_get("/Font").raw_get("/F1")
    font = font_ref.get_object()
    font[pdf_name("/BaseFont")] = pdf_name("/Courier")
    writer.update_container(font)


def add_page(writer: IncrementalPdfFileWriter) -> None:
    content = writer.add_object(generic.StreamObject(
        stream_data=b"BT /F1 14 Tf 72 720 Td (Addendum: all prices doubled) Tj ET"))
    writer.insert_page(PageObject(contents=content, media_box=(0, 0, 595, 842)))


def remove_last_page(writer: IncrementalPdfFileWriter) -> None:
    pages = writer.root["/Pages"]
    kids = pages["/Kids"]
    pages[pdf_name("/Kids")] = generic.ArrayObject(list(kids)[:-1])
    pages[pdf_name("/Count")] = generic.NumberObject(len(kids) - 1)
    writer.update_container(pages)


def fill_text_field(name: str, value: str) -> Callable[[IncrementalPdfFileWriter], None]:
    """Form filling as a viewer does it: the value and a new appearance stream."""
    def change(writer: IncrementalPdfFileWriter) -> None:
        for ref in writer.root["/AcroForm"]["/Fields"]:
            field = ref.get_object()
            if field.get("/T") == name:
                field[pdf_name("/V")] = generic.TextStringObject(value)
                stream = generic.StreamObject({
                    pdf_name("/Type"): pdf_name("/XObject"),
                    pdf_name("/Subtype"): pdf_name("/Form"),
                    pdf_name("/BBox"): generic.ArrayObject(
                        generic.FloatObject(v) for v in (0, 0, 228, 20))},
                    stream_data=b"/Tx BMC BT /Helv 10 Tf 2 6 Td (" + value.encode() +
                    b") Tj ET EMC")
                field[pdf_name("/AP")] = generic.DictionaryObject(
                    {pdf_name("/N"): writer.add_object(stream)})
                writer.update_container(field)
    return change


# --- signers other tools use ------------------------------------------------------------

class PlainEcdsaSigner(signers.SimpleSigner):
    """ECDSA with the signature value as plain r||s (BSI TR-03111), as many smart cards and
    European signing services write it; ``bsi_oid`` also names it by the plain-ECDSA OID."""

    bsi_oid = False

    def get_signature_mechanism_for_digest(self, digest_algorithm):
        if self.bsi_oid:
            return algos.SignedDigestAlgorithm({"algorithm": "0.4.0.127.0.7.1.1.4.1.3"})
        return super().get_signature_mechanism_for_digest(digest_algorithm)

    def sign_raw(self, data: bytes, digest_algorithm: str) -> bytes:
        key = serialization.load_der_private_key(self.signing_key.dump(), password=None)
        from cryptography.hazmat.primitives import hashes
        r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
        size = (key.curve.key_size + 7) // 8
        return r.to_bytes(size, "big") + s.to_bytes(size, "big")

    async def async_sign_raw(self, data: bytes, digest_algorithm: str, dry_run=False) -> bytes:
        return self.sign_raw(data, digest_algorithm)


class BsiPlainEcdsaSigner(PlainEcdsaSigner):
    bsi_oid = True


class TwoSignerInfos(signers.SimpleSigner):
    """One CMS with two SignerInfos over the same document digest (a co-signature)."""

    second: signers.SimpleSigner
    break_second = False

    async def async_sign(self, data_digest, digest_algorithm, dry_run=False, use_pades=False,
                         timestamper=None, signed_attr_settings=None, is_pdf_sig=True,
                         encap_content_info=None) -> cms.ContentInfo:
        kwargs = {"dry_run": dry_run, "use_pades": use_pades, "timestamper": timestamper,
                  "signed_attr_settings": signed_attr_settings, "is_pdf_sig": is_pdf_sig}
        first = await super().async_sign(data_digest, digest_algorithm, **kwargs)
        other = await self.second.async_sign(data_digest, digest_algorithm, **kwargs)
        signed_data = first["content"]
        info = other["content"]["signer_infos"][0]
        if self.break_second and not dry_run:
            value = bytearray(info["signature"].native)
            value[-3] ^= 0x01
            info["signature"] = bytes(value)
        signed_data["signer_infos"] = [*signed_data["signer_infos"], info]
        known = {c.chosen.dump() for c in signed_data["certificates"]}
        extra = [c for c in other["content"]["certificates"] if c.chosen.dump() not in known]
        signed_data["certificates"] = [*signed_data["certificates"], *extra]
        return cms.ContentInfo({"content_type": "signed_data", "content": signed_data})


def flip_byte_in_last_revision(pdf: bytes, needle: bytes) -> bytes:
    """Change one signed byte (a letter of ``needle``, last occurrence) without changing the
    length: the signature's digest no longer matches."""
    at = pdf.rindex(needle)
    return pdf[:at] + bytes([pdf[at] ^ 0x20]) + pdf[at + 1:]


class UnsupportedAlgorithmSigner(signers.SimpleSigner):
    """Names its signature algorithm SM2-with-SM3 (GB/T 35276), which the validator cannot
    check: the value itself is ECDSA, but nobody can tell without SM2 support."""

    def get_signature_mechanism_for_digest(self, digest_algorithm):
        return algos.SignedDigestAlgorithm({"algorithm": "1.2.156.10197.1.501"})

    def sign_raw(self, data: bytes, digest_algorithm: str) -> bytes:
        from cryptography.hazmat.primitives import hashes
        key = serialization.load_der_private_key(self.signing_key.dump(), password=None)
        return key.sign(data, ec.ECDSA(hashes.SHA256()))

    async def async_sign_raw(self, data: bytes, digest_algorithm: str, dry_run=False) -> bytes:
        return self.sign_raw(data, digest_algorithm)


class BrokenPlainEcdsaSigner(PlainEcdsaSigner):
    def sign_raw(self, data: bytes, digest_algorithm: str) -> bytes:
        value = bytearray(super().sign_raw(data, digest_algorithm))
        value[5] ^= 0x01
        return bytes(value)


# --- post-signing rewrites of a CMS (its /Contents is outside the byte range) ------------

def _contents_span(pdf: bytes, index: int) -> tuple[int, int]:
    import re
    ranges = list(re.finditer(rb"/ByteRange\s*\[\s*(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s*\]", pdf))
    _, first, second, _ = map(int, ranges[index].groups())
    return first + 1, second - 1  # inside the < > of the hex string


def signed_data_of(pdf: bytes, index: int = -1) -> cms.SignedData:
    start, end = _contents_span(pdf, index)
    return cms.ContentInfo.load(bytes.fromhex(pdf[start:end].decode()))["content"]


def rewrite_cms(pdf: bytes, mutate: Callable[[cms.SignedData], None], index: int = -1) -> bytes:
    """Return ``pdf`` with the CMS of signature ``index`` changed by ``mutate`` (same size)."""
    start, end = _contents_span(pdf, index)
    info = cms.ContentInfo.load(bytes.fromhex(pdf[start:end].decode()))
    signed = info["content"]
    mutate(signed)
    new = cms.ContentInfo({"content_type": "signed_data", "content": signed}).dump(force=True)
    text = new.hex().encode()
    assert len(text) <= end - start, "the rewritten CMS does not fit"
    return pdf[:start] + text + b"0" * (end - start - len(text)) + pdf[end:]


def copy_signature_timestamp(source: bytes) -> Callable[[cms.SignedData], None]:
    """A mutation that replaces a signature's timestamp token by ``source``'s (a token over
    another signature value: a copied timestamp)."""
    donor = signed_data_of(source)["signer_infos"][0]["unsigned_attrs"]

    def mutate(signed: cms.SignedData) -> None:
        signed["signer_infos"][0]["unsigned_attrs"] = cms.CMSAttributes(
            [cms.CMSAttribute.load(attr.dump()) for attr in donor])
    return mutate


def break_signature_timestamp(signed: cms.SignedData) -> None:
    """A mutation that damages the timestamp authority's own signature in the token."""
    attrs = signed["signer_infos"][0]["unsigned_attrs"]
    token = next(a for a in attrs if a["type"].native == "signature_time_stamp_token")
    info = token["values"][0]["content"]["signer_infos"][0]
    value = bytearray(info["signature"].native)
    value[10] ^= 0x01
    info["signature"] = bytes(value)


# --- revision data as other tools write it ----------------------------------------------

def add_dss(pdf: bytes, pki: CorpusPKI, *, lowercase_vri: bool = False,
            touch_existing_vri: bool = False, also: Callable | None = None) -> bytes:
    """Return ``pdf`` with a DSS update (certificates, CRLs, one VRI entry per signature)
    written the way some signing tools write it: lowercase VRI keys, or an existing VRI
    entry updated with a /TU time; ``also`` makes another change in the same update."""
    import hashlib

    from pyhanko.pdf_utils.reader import PdfFileReader

    reader = PdfFileReader(io.BytesIO(pdf), strict=False)
    files = pki.ca.files
    certs = [files.read(f"{label}.crt") for label in ("root", "issuing")]
    crls = [files.read(f"{label}.crl") for label in ("root", "issuing")]

    def change(writer: IncrementalPdfFileWriter) -> None:
        root = writer.root
        if touch_existing_vri:
            dss = root["/DSS"]
            vri = dss["/VRI"]
            for key in list(vri.keys()):
                entry = vri[key]
                entry[pdf_name("/TU")] = generic.pdf_date(
                    __import__("datetime").datetime.now(__import__("datetime").UTC))
            writer.update_container(dss)
        else:
            def streams(items, pem=False):
                out = []
                for item in items:
                    data = item
                    if pem:
                        from asn1crypto import pem as asn1_pem
                        data = asn1_pem.unarmor(item)[2]
                    out.append(writer.add_object(generic.StreamObject(stream_data=data)))
                return generic.ArrayObject(out)
            cert_refs, crl_refs = streams(certs, pem=True), streams(crls)
            vri = generic.DictionaryObject()
            for sig in reader.embedded_signatures:
                digest = hashlib.sha1(sig.pkcs7_content).hexdigest()
                key = digest.lower() if lowercase_vri else digest.upper()
                vri[pdf_name(f"/{key}")] = generic.DictionaryObject({
                    pdf_name("/Cert"): cert_refs, pdf_name("/CRL"): crl_refs})
            root[pdf_name("/DSS")] = writer.add_object(generic.DictionaryObject({
                pdf_name("/Certs"): cert_refs, pdf_name("/CRLs"): crl_refs,
                pdf_name("/VRI"): vri}))
            writer.update_root()
        if also is not None:
            also(writer)
    return incremental(pdf, change)


# --- the corpus ---------------------------------------------------------------------------

def build_corpus(pki: CorpusPKI) -> list[Sample]:
    """Return every sample: for each category, honest files and hostile ones."""
    tsa = pki.tsa
    alice = pki.signer("Alice Wong")
    bob = pki.signer("Bob Li", rsa_key=True)
    samples: list[Sample] = []

    def add(category, name, honest, pdf, expect, reason=""):
        samples.append(Sample(name=name, category=category, honest=honest, pdf=pdf,
                              expect=expect, reason=reason))

    plain = base_document(text_fields=("remarks",))
    approved = sign(plain, alice, "Signature1", timestamper=tsa, new_box=(320, 100, 520, 150))
    certified = sign(base_document(text_fields=("remarks",), sig_fields=("Approver",)), alice,
                     "Author", timestamper=tsa, certify=True, new_box=(320, 200, 520, 250))

    # Baseline: what every tool makes.
    add("baseline", "approval signature", True, approved, PASSED)
    add("baseline", "certification, form filling allowed", True, certified, PASSED)
    add("baseline", "RSA, adbe.pkcs7.detached", True,
        sign(plain, bob, "Sig", timestamper=tsa, subfilter=SigSeedSubFilter.ADOBE_PKCS7_DETACHED,
             new_box=(320, 100, 520, 150)), PASSED)
    add("baseline", "one signed byte changed", False,
        flip_byte_in_last_revision(approved, b"Purchase"), FAILED, "altered")

    # Revision data (DSS/VRI) added after signing, by this or another tool.
    add("revision data", "DSS with upper-case VRI keys", True, add_dss(approved, pki), PASSED)
    add("revision data", "DSS with lower-case VRI keys", True,
        add_dss(approved, pki, lowercase_vri=True), PASSED)
    add("revision data", "VRI entry updated by a second LTV pass", True,
        add_dss(add_dss(approved, pki), pki, touch_existing_vri=True), PASSED)
    add("revision data", "DSS update that also paints over page 1", False,
        add_dss(approved, pki, also=overlay_page), FAILED, "page 1")
    add("revision data", "DSS update that swaps the font", False,
        add_dss(approved, pki, also=swap_font), FAILED, "font")

    # A signature added after a document timestamp.
    stamped = document_timestamp(approved, tsa)
    add("after a document timestamp", "approval signature after the timestamp", True,
        sign(stamped, bob, "Second", timestamper=tsa, new_box=(320, 300, 520, 350)), PASSED)
    add("after a document timestamp", "content painted after the timestamp", False,
        incremental(stamped, overlay_page), FAILED, "page 1")

    # What the certification level allows.
    add("certification level", "form filled after P=2 certification", True,
        incremental(certified, fill_text_field("remarks", "agreed")), PASSED)
    add("certification level", "approval signature in the prepared field after P=2", True,
        sign(certified, bob, "Approver", timestamper=tsa), PASSED)
    add("certification level", "approval signature in a new field after P=2", True,
        sign(certified, bob, "Late", timestamper=tsa, new_box=(320, 400, 520, 450)), PASSED)
    annotatable = sign(base_document(), alice, "Author", timestamper=tsa, certify=True,
                       permissions=MDPPerm.ANNOTATE, new_box=(320, 200, 520, 250))
    add("certification level", "sticky note after P=3 certification", True,
        incremental(annotatable, add_annotation("/Text")), PASSED)
    add("certification level", "free-text annotation after P=3 certification", True,
        incremental(annotatable, add_annotation(
            "/FreeText", rect=(60, 500, 300, 530),
            appearance=b"BT /Helv 12 Tf 4 10 Td (seen, agreed) Tj ET")), PASSED)
    add("certification level", "annotation after P=2 certification", False,
        incremental(certified, add_annotation("/Text")), FAILED, "certif")
    locked = sign(base_document(text_fields=("remarks",)), alice, "Author", timestamper=tsa,
                  certify=True, permissions=MDPPerm.NO_CHANGES, new_box=(320, 200, 520, 250))
    add("certification level", "form filled after P=1 certification", False,
        incremental(locked, fill_text_field("remarks", "agreed")), FAILED, "certif")

    # Additions to an uncertified document: warnings; changes to what was signed: failures.
    highlight = b"q /GS0 gs 1 1 0 rg 0 0 200 14 re f Q"
    add("uncertified additions", "sticky note", True,
        incremental(approved, add_annotation("/Text")), PASSED)
    add("uncertified additions", "highlight with a multiply blend", True,
        incremental(approved, _transparent(add_annotation(
            "/Highlight", rect=(70, 715, 270, 729), appearance=highlight))), PASSED)
    add("uncertified additions", "form filled", True,
        incremental(approved, fill_text_field("remarks", "agreed")), PASSED)
    add("uncertified additions", "second approval signature", True,
        sign(approved, bob, "Signature2", timestamper=tsa, new_box=(320, 300, 520, 350)), PASSED)
    add("uncertified additions", "free-text annotation over the total", False,
        incremental(approved, add_annotation(
            "/FreeText", rect=(60, 700, 540, 760),
            appearance=b"1 1 1 rg 0 0 480 60 re f BT /Helv 14 Tf 12 20 Td "
                       b"(total budget 9,999,999) Tj ET")), FAILED, "annotation")
    add("uncertified additions", "opaque square over the total", False,
        incremental(approved, add_annotation(
            "/Square", rect=(60, 700, 540, 760), appearance=b"1 1 1 rg 0 0 480 60 re f")),
        FAILED, "annotation")
    add("uncertified additions", "sticky note whose appearance paints text", False,
        incremental(approved, add_annotation(
            "/Text", rect=(60, 700, 540, 760),
            appearance=b"1 1 1 rg 0 0 480 60 re f BT /Helv 14 Tf 12 20 Td (void) Tj ET")),
        FAILED, "annotation")
    add("uncertified additions", "shadow attack: overlay", False,
        incremental(approved, overlay_page), FAILED, "page 1")
    add("uncertified additions", "shadow attack: content replaced", False,
        incremental(approved, replace_content), FAILED, "page 1")
    add("uncertified additions", "font swapped", False, incremental(approved, swap_font),
        FAILED, "font")
    add("uncertified additions", "page added", False, incremental(approved, add_page),
        FAILED, "page")
    add("uncertified additions", "page removed", False, incremental(approved, remove_last_page),
        FAILED, "page")

    # Whitespace after %%EOF is not a modification; anything else there is.
    add("after %%EOF", "three bytes of whitespace", True, approved + b"\r\n ", PASSED)
    add("after %%EOF", "end-of-line and NULs", True, approved + b"\n\x00\x00", PASSED)
    add("after %%EOF", "an object after the end", False,
        approved + b"\n9 0 obj\n<< /Injected true >>\nendobj\n", FAILED, "after the end")

    # Plain ECDSA (r||s) signature values.
    add("plain ECDSA", "r||s under ecdsa-with-SHA256", True,
        sign(plain, pki.signer("Carol Plain", cls=PlainEcdsaSigner), "Sig", timestamper=tsa,
             new_box=(320, 100, 520, 150)), PASSED)
    add("plain ECDSA", "r||s under the BSI plain-ECDSA OID", True,
        sign(plain, pki.signer("Dan Plain", cls=BsiPlainEcdsaSigner), "Sig", timestamper=tsa,
             new_box=(320, 100, 520, 150)), PASSED)
    add("plain ECDSA", "r||s that does not verify", False,
        sign(plain, pki.signer("Eve Plain", cls=BrokenPlainEcdsaSigner), "Sig", timestamper=tsa,
             new_box=(320, 100, 520, 150)), FAILED, "signature value")

    # Field names with periods.
    dotted = sign(base_document(text_fields=("remarks",), flat_sig_field="Signature.1"),
                  alice, "Signature.1", timestamper=tsa)
    add("field names", "period in the field's partial name", True, dotted, PASSED)
    add("field names", "period in the name, revision data added later", True,
        add_dss(dotted, pki), PASSED)
    nested = base_document(sig_fields=("approvals.manager",))
    add("field names", "hierarchical field approvals.manager", True,
        sign(nested, alice, "approvals.manager", timestamper=tsa), PASSED)
    add("field names", "signed dotted field's appearance swapped later", False,
        incremental(dotted, _swap_appearance("Signature.1")), FAILED, "Signature.1")

    # Document timestamps, typed as the standard says or not.
    add("document timestamps", "typed /DocTimeStamp", True, stamped, PASSED)
    add("document timestamps", "typed /Sig with SubFilter ETSI.RFC3161", True,
        document_timestamp(approved, tsa, sig_type="/Sig"), PASSED)
    add("document timestamps", "untyped, SubFilter ETSI.RFC3161", True,
        document_timestamp(approved, tsa, sig_type=None), PASSED)
    add("document timestamps", "timestamped bytes altered", False,
        flip_byte_in_last_revision(stamped, b"Purchase"), FAILED, "altered")

    # One CMS, two SignerInfos.
    cosigner = pki.signer("Frank Co", cls=TwoSignerInfos)
    cosigner.second = bob
    add("two SignerInfos", "both signer infos verify", True,
        sign(plain, cosigner, "Sig", timestamper=tsa, new_box=(320, 100, 520, 150)), PASSED)
    broken = pki.signer("Grace Co", cls=TwoSignerInfos)
    broken.second, broken.break_second = bob, True
    add("two SignerInfos", "the second signer info does not verify", False,
        sign(plain, broken, "Sig", timestamper=tsa, new_box=(320, 100, 520, 150)), FAILED,
        "signature value")

    # Encrypted with an empty user password.
    locked_doc = base_document(user_password=b"")
    encrypted = sign(locked_doc, alice, "Sig", timestamper=tsa, password=b"",
                     new_box=(320, 100, 520, 150))
    add("encrypted", "empty user password", True, encrypted, PASSED)
    add("encrypted", "empty user password, page painted after signing", False,
        incremental(encrypted, overlay_page, password=b""), FAILED, "page 1")

    # Signature timestamps: genuine, copied from another signature, untrusted.
    other = sign(plain, bob, "Other", timestamper=tsa, new_box=(320, 100, 520, 150))
    add("signature timestamps", "timestamp copied from another signature", False,
        rewrite_cms(approved, copy_signature_timestamp(other)), FAILED, "copied")
    add("signature timestamps", "timestamp whose own signature is broken", False,
        rewrite_cms(approved, break_signature_timestamp), FAILED, "timestamp is broken")
    stranger_tsa = pki.stranger_ca.timestamp_authority().timestamper()
    add("signature timestamps", "timestamp by an unknown authority", True,
        sign(plain, alice, "Sig", timestamper=stranger_tsa, new_box=(320, 100, 520, 150)),
        INDETERMINATE)

    # A chain nobody configured: intact bytes are INDETERMINATE, altered ones FAILED.
    unknown = sign(plain, pki.stranger("Stranger"), "Sig", timestamper=tsa,
                   new_box=(320, 100, 520, 150))
    add("unknown chain", "intact signature, unknown root", True, unknown, INDETERMINATE)
    add("unknown chain", "certificate from a CA that copies the trusted CA's names", False,
        sign(plain, pki.signer("Mallory", impostor=True), "Sig", timestamper=tsa,
             new_box=(320, 100, 520, 150)), INDETERMINATE, "not trusted")
    add("unknown chain", "altered bytes, unknown root", False,
        flip_byte_in_last_revision(unknown, b"Purchase"), FAILED, "altered")

    # Algorithms this validator does not implement.
    sm2 = sign(plain, pki.signer("Han SM2", cls=UnsupportedAlgorithmSigner), "Sig",
               timestamper=tsa, new_box=(320, 100, 520, 150))
    add("unsupported algorithm", "SM2-with-SM3", True, sm2, INDETERMINATE)
    add("unsupported algorithm", "SM2-with-SM3, altered bytes", False,
        flip_byte_in_last_revision(sm2, b"Purchase"), FAILED, "altered")

    # Spoofed signature dictionaries.
    add("spoofed signatures", "each field with its own signature dictionary", True,
        sign(approved, bob, "Signature2", timestamper=tsa, new_box=(320, 300, 520, 350)), PASSED)
    add("spoofed signatures", "second field pointing at the first signature", False,
        incremental(approved, _duplicate_signature_field), FAILED, "modified after signing")
    return samples


def _transparent(change):
    """Give the appearance of the annotation ``change`` adds a multiply blend mode."""
    def wrapped(writer: IncrementalPdfFileWriter) -> None:
        change(writer)
        page = writer.root["/Pages"]["/Kids"][0].get_object()
        annot = page["/Annots"][-1].get_object()
        stream = annot["/AP"]["/N"]
        stream[pdf_name("/Resources")] = generic.DictionaryObject({
            pdf_name("/ExtGState"): generic.DictionaryObject({
                pdf_name("/GS0"): generic.DictionaryObject({
                    pdf_name("/BM"): pdf_name("/Multiply"),
                    pdf_name("/CA"): generic.FloatObject(1)})})})
        writer.update_container(stream)
    return wrapped


def _swap_appearance(field_name: str):
    def change(writer: IncrementalPdfFileWriter) -> None:
        for name, _value, ref in fields.enumerate_sig_fields(writer, filled_status=True):
            if name == field_name:
                field = ref.get_object()
                stream = generic.StreamObject(stream_data=b"0 0 1 rg 0 0 50 20 re f")
                field[pdf_name("/AP")] = generic.DictionaryObject(
                    {pdf_name("/N"): writer.add_object(stream)})
                writer.update_container(field)
    return change


def _duplicate_signature_field(writer: IncrementalPdfFileWriter) -> None:
    """A new signature field whose value is the existing signature dictionary."""
    acroform = writer.root["/AcroForm"]
    existing = next(ref.get_object() for ref in acroform["/Fields"]
                    if ref.get_object().get("/FT") == "/Sig")
    copy = writer.add_object(generic.DictionaryObject({
        pdf_name("/FT"): pdf_name("/Sig"), pdf_name("/T"): generic.TextStringObject("Copy"),
        pdf_name("/V"): existing.raw_get("/V"), pdf_name("/Type"): pdf_name("/Annot"),
        pdf_name("/Subtype"): pdf_name("/Widget"),
        pdf_name("/Rect"): generic.ArrayObject(generic.FloatObject(v) for v in (0, 0, 0, 0))}))
    acroform["/Fields"].append(copy)
    writer.update_container(acroform)
