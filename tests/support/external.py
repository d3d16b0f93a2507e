"""Signing as a party's own tool would: pyHanko's API directly, none of the project's code
between the key and the PDF."""

from __future__ import annotations

import io

from asn1crypto import keys as asn1_keys
from cryptography.hazmat.primitives import serialization
from pyhanko.keys import load_cert_from_pemder
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import signers
from pyhanko.sign.fields import SigSeedSubFilter
from pyhanko.sign.timestamps.dummy_client import DummyTimeStamper
from pyhanko_certvalidator.registry import SimpleCertificateStore

from pipeline.config import Settings


def external_sign(settings: Settings, pdf: bytes, party: str, field: str,
                  timestamp: bool = True) -> bytes:
    """Return ``pdf`` signed in ``field`` with ``party``'s PKCS#12 (passphrase ``demo``) of
    the data folder, timestamped by the local CA's TSA unless ``timestamp`` is false."""
    signer = signers.SimpleSigner.load_pkcs12(str(settings.keys_dir / f"{party}.p12"),
                                              passphrase=b"demo")
    ca = settings.ca_dir
    passphrase = (ca / "passphrase").read_bytes()
    tsa_key = serialization.load_pem_private_key((ca / "tsa.key").read_bytes(), passphrase)
    tsa = DummyTimeStamper(
        tsa_cert=load_cert_from_pemder(str(ca / "tsa.crt")),
        tsa_key=asn1_keys.PrivateKeyInfo.load(tsa_key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption())),
        certs_to_embed=SimpleCertificateStore.from_certs(
            [load_cert_from_pemder(str(ca / "root.crt"))]))
    meta = signers.PdfSignatureMetadata(field_name=field, md_algorithm="sha256",
                                        subfilter=SigSeedSubFilter.PADES)
    out = signers.sign_pdf(IncrementalPdfFileWriter(io.BytesIO(pdf)), meta, signer,
                           timestamper=tsa if timestamp else None)
    return out.getvalue()
