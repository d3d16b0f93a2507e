"""CMS signatures that other tools make and pyHanko does not read on its own.

- ECDSA values written as plain ``r||s`` (BSI TR-03111) instead of a DER sequence, under the
  BSI plain-ECDSA object identifiers or under the usual ``ecdsa-with-SHA*`` ones, as many
  smart cards and European signing services write them; and ``id-ecPublicKey`` named as the
  signature algorithm. The value is still verified, only its encoding is tolerated.
- A CMS with several SignerInfos (a co-signature in one container): each SignerInfo is
  validated on its own, as a view of the same PDF signature.
"""

from __future__ import annotations

from asn1crypto import algos, cms
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation.pdf_embedded import EmbeddedPdfSignature, extract_contents
from pyhanko_certvalidator.errors import AlgorithmNotSupported
from pyhanko_certvalidator.sig_validate import (
    DEFAULT_VALIDATION_CONTEXT,
    DefaultSignatureValidator,
    SignatureValidationContext,
)

# BSI TR-03111 ecdsa-plain-SHA*: 0.4.0.127.0.7.1.1.4.1.N
PLAIN_ECDSA = {f"0.4.0.127.0.7.1.1.4.1.{n}": digest for n, digest in
               ((1, "sha1"), (2, "sha224"), (3, "sha256"), (4, "sha384"), (5, "sha512"))}
EC_PUBLIC_KEY = "1.2.840.10045.2.1"


def _der(signature: bytes) -> bytes | None:
    """Return the DER encoding of a plain ``r||s`` value, or None if it is not one."""
    if len(signature) % 2 or len(signature) > 264:
        return None
    half = len(signature) // 2
    return encode_dss_signature(int.from_bytes(signature[:half], "big"),
                                int.from_bytes(signature[half:], "big"))


class UnsupportedAlgorithm(Exception):
    """The signature algorithm is not implemented: its value cannot be checked either way.

    pyHanko's own error for this derives from ``InvalidSignature``, which would report the
    value as wrong; this one is deliberately not."""


class TolerantSignatureValidator(DefaultSignatureValidator):
    """pyHanko's signature check, also reading plain ``r||s`` ECDSA values, and telling an
    algorithm it does not implement apart from a value that does not verify."""

    def validate_signature(self, signature: bytes, signed_data: bytes, public_key_info,
                           signature_algorithm: algos.SignedDigestAlgorithm,
                           context: SignatureValidationContext = DEFAULT_VALIDATION_CONTEXT
                           ) -> None:
        oid = signature_algorithm["algorithm"].dotted
        if oid in PLAIN_ECDSA or oid == EC_PUBLIC_KEY:
            digest = PLAIN_ECDSA.get(oid) or context.contextual_md_algorithm or "sha256"
            signature_algorithm = algos.SignedDigestAlgorithm(
                {"algorithm": f"{digest}_ecdsa"})
        try:
            super().validate_signature(signature, signed_data, public_key_info,
                                       signature_algorithm, context)
        except AlgorithmNotSupported as exc:
            raise UnsupportedAlgorithm(f"{oid}: {exc}") from None
        except InvalidSignature:
            der = _der(signature) if public_key_info.algorithm == "ec" else None
            if der is None or der == signature:
                raise
            super().validate_signature(der, signed_data, public_key_info,
                                       signature_algorithm, context)


class SignerInfoView(EmbeddedPdfSignature):
    """One SignerInfo of a PDF signature whose CMS carries several: everything else (byte
    range, revision, coverage) is the PDF signature's own.

    It sets what :class:`EmbeddedPdfSignature` sets; only the SignedData is narrowed."""

    def __init__(self, reader: PdfFileReader, sig_field, fq_name: str, index: int) -> None:
        if isinstance(sig_field, generic.IndirectObject):
            sig_field = sig_field.get_object()
        self.reader = reader
        self.sig_field = sig_field
        sig_ref = sig_field.raw_get("/V")
        self.sig_object = sig_ref.get_object()
        self.byte_range = self.sig_object.raw_get("/ByteRange")
        self.pkcs7_content = extract_contents(self.sig_object)
        whole = cms.ContentInfo.load(self.pkcs7_content)["content"]
        narrowed = whole.copy()
        narrowed["signer_infos"] = cms.SignerInfos([whole["signer_infos"][index].copy()])
        self.signed_data = narrowed
        self.signer_info = narrowed["signer_infos"][0]
        self._sd_cert_info = None
        self.md_algorithm = self.signer_info["digest_algorithm"]["algorithm"].native.lower()
        self.external_md_algorithm = self.md_algorithm
        self.signed_revision = reader.xrefs.get_last_change(sig_ref.reference)
        self.coverage = None
        self.external_digests = {}
        self._docmdp = self._fieldmdp = None
        self._docmdp_queried = self._fieldmdp_queried = False
        self.tst_signature_digest = None
        self.diff_result = None
        self._integrity_checked = False
        self.fq_name = fq_name


def signature_views(reader: PdfFileReader, sig_field, fq_name: str
                    ) -> list[EmbeddedPdfSignature]:
    """Return the signature in ``sig_field``: itself, or one view per SignerInfo."""
    sig_object = sig_field.get_object()["/V"]
    count = len(cms.ContentInfo.load(extract_contents(sig_object))["content"]["signer_infos"])
    if count == 1:
        return [EmbeddedPdfSignature(reader, sig_field, fq_name)]
    if count == 0:
        raise ValueError("the CMS has no SignerInfo")
    return [SignerInfoView(reader, sig_field, fq_name, index) for index in range(count)]
