"""Signing as a party's own tool would: pyHanko's API directly, none of the project's code
between the key and the PDF."""

from __future__ import annotations

import io

from asn1crypto import keys as asn1_keys
from cryptography.hazmat.primitives import serialization
from pyhanko.keys import load_certs_from_pemder_data
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import signers
from pyhanko.sign.fields import SigSeedSubFilter
from pyhanko.sign.timestamps.dummy_client import DummyTimeStamper
from pyhanko_certvalidator.registry import SimpleCertificateStore

from pipeline.config import Settings
from pipeline.signing_setup import local_ca
from tests.support.data import party_p12


def _certificate(pem: bytes):
    return next(iter(load_certs_from_pemder_data(pem)))


def external_sign(settings: Settings, pdf: bytes, party: str, field: str,
                  timestamp: bool = True) -> bytes:
    """Return ``pdf`` signed in ``field`` with ``party``'s PKCS#12 (passphrase ``demo``) from
    the store, timestamped by the local CA's TSA unless ``timestamp`` is false."""
    signer = signers.SimpleSigner.load_pkcs12_data(party_p12(settings, party), [], b"demo")
    ca = local_ca(settings).files  # the CA's files as the store keeps them
    passphrase = ca.read("passphrase")
    tsa_key = serialization.load_pem_private_key(ca.read("tsa.key"), passphrase)
    tsa = DummyTimeStamper(
        tsa_cert=_certificate(ca.read("tsa.crt")),
        tsa_key=asn1_keys.PrivateKeyInfo.load(tsa_key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption())),
        certs_to_embed=SimpleCertificateStore.from_certs(
            [_certificate(ca.read("root.crt"))]))
    meta = signers.PdfSignatureMetadata(field_name=field, md_algorithm="sha256",
                                        subfilter=SigSeedSubFilter.PADES)
    out = signers.sign_pdf(IncrementalPdfFileWriter(io.BytesIO(pdf)), meta, signer,
                           timestamper=tsa if timestamp else None)
    return out.getvalue()
