"""Hostile PDFs made in a moment, with no LibreOffice: a blank page signed with a demo
party's key, and the same followed by many empty incremental updates (verification is
quadratic in them). Shared by the attack tests and ``bench/load.py``."""

from __future__ import annotations

import io
import re

from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import signers
from pypdf import PdfWriter

from pipeline.config import Settings
from tests.support.data import party_p12


def blank_pdf() -> bytes:
    """Return a one-page blank PDF."""
    writer = PdfWriter()
    writer.add_blank_page(200, 200)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def signed_blank(settings: Settings, party: str = "lina", field: str = "receiver") -> bytes:
    """Return a blank page signed (no timestamp) with ``party``'s demo key."""
    signer = signers.SimpleSigner.load_pkcs12_data(party_p12(settings, party), [], b"demo")
    out = io.BytesIO()
    signers.sign_pdf(IncrementalPdfFileWriter(io.BytesIO(blank_pdf())),
                     signers.PdfSignatureMetadata(field_name=field), signer=signer, output=out)
    return out.getvalue()


def with_empty_updates(pdf: bytes, count: int) -> bytes:
    """Return ``pdf`` followed by ``count`` incremental updates that change nothing."""
    trailer = pdf[pdf.rindex(b"trailer"):]
    root = re.search(rb"/Root\s+(\d+\s+\d+\s+R)", trailer).group(1)
    size = int(re.search(rb"/Size\s+(\d+)", trailer).group(1))
    previous = int(re.findall(rb"startxref\s+(\d+)", pdf)[-1])
    out = bytearray(pdf)
    for _ in range(count):
        offset = len(out)
        out += (b"xref\n0 1\n0000000000 65535 f \ntrailer\n<< /Size %d /Root %s /Prev %d >>\n"
                b"startxref\n%d\n%%%%EOF\n" % (size, root, previous, offset))
        previous = offset
    return bytes(out)


def blank_with_field(field: str) -> bytes:
    """Return a blank page with one empty signature field named ``field``."""
    from pyhanko.sign.fields import SigFieldSpec, append_signature_field

    writer = IncrementalPdfFileWriter(io.BytesIO(blank_pdf()))
    append_signature_field(writer, SigFieldSpec(field, box=(20, 20, 180, 60)))
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()
