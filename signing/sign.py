"""One party's PAdES signature into its own pre-made field, with an RFC 3161 timestamp.

The first signature of a document certifies it (DocMDP: form filling and signatures allowed);
every later one is an approval signature, so earlier signatures stay valid. The signer's
certificate is validated first — revoked, expired or untrusted certificates sign nothing.
"""

from __future__ import annotations

import asyncio
import io
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.sign import fields as pyhanko_fields
from pyhanko.sign.fields import MDPPerm, SigSeedSubFilter
from pyhanko.sign.general import SigningError
from pyhanko.sign.signers import PdfSignatureMetadata, PdfSigner, constants
from pyhanko.sign.signers.pdf_cms import Signer
from pyhanko.sign.timestamps.common_utils import TimestampRequestError
from pyhanko_certvalidator import CertificateValidator
from pyhanko_certvalidator.errors import (
    ExpiredError,
    InsufficientRevinfoError,
    NotYetValidError,
    PathBuildingError,
    PathValidationError,
    RevokedError,
    ValidationError,
)

from signing.appearance import Stamp, stamp_style
from signing.errors import (
    CertificateRefused,
    NotAPdf,
    SignatureFieldError,
    SigningFailed,
    TimestampUnavailable,
)
from signing.timestamps import TimestampAuthority
from signing.trust import TrustSettings, validation_context

SIGNER_KEY_USAGE = {"non_repudiation"}


class VersionKeepingSigner(PdfSigner):
    """pyHanko's signer, minus one thing: for ECDSA on P-256 it declares the ISO 32002
    extension and raises the catalog's /Version to 2.0, while the documents here are
    PDF/A-2b, which is PDF 1.7. ECDSA needs no PDF 2.0 reader in practice, so a document
    below 2.0 keeps its version and gets only the PAdES (ESIC, base 1.7) extension."""

    def register_extensions(self, pdf_out, *, md_algorithm: str) -> None:
        if pdf_out.output_version >= (2, 0):
            super().register_extensions(pdf_out, md_algorithm=md_algorithm)
        elif self.signature_meta.subfilter == SigSeedSubFilter.PADES:
            pdf_out.ensure_output_version(version=(1, 7))
            pdf_out.register_extension(constants.ESIC_EXTENSION_1)


@dataclass(frozen=True)
class SignatureRequest:
    """What to sign: which field, what the stamp shows, and whether this certifies."""

    field: str
    stamp: Stamp
    certify: bool
    location: str = ""


def _refusal(exc: Exception) -> CertificateRefused:
    if isinstance(exc, RevokedError):
        return CertificateRefused("签名证书已被吊销",
                                  f"the signing certificate is revoked: {exc}")
    if isinstance(exc, ExpiredError):
        return CertificateRefused("签名证书已过期",
                                  f"the signing certificate has expired: {exc}")
    if isinstance(exc, NotYetValidError):
        return CertificateRefused("签名证书尚未生效",
                                  f"the signing certificate is not yet valid: {exc}")
    if isinstance(exc, PathBuildingError):
        return CertificateRefused(
            "签名证书不是由受信任的根证书签发",
            f"the signing certificate does not chain to a trusted root: {exc}")
    if isinstance(exc, InsufficientRevinfoError):
        return CertificateRefused("无法确认签名证书的吊销状态",
                                  f"the signing certificate's revocation status is unknown: {exc}")
    return CertificateRefused(f"签名证书无效：{exc}",
                              f"the signing certificate is not valid: {exc}")


async def async_check_signer_certificate(signer: Signer, trust: TrustSettings) -> None:
    """Raise CertificateRefused unless the signer's certificate is trusted, current, not
    revoked (revocation data required) and allowed to make non-repudiation signatures."""
    registry = signer.cert_registry
    context = validation_context(trust)
    validator = CertificateValidator(
        signer.signing_cert,
        intermediate_certs=list(registry) if registry is not None else [],
        validation_context=context,
    )
    try:
        await validator.async_validate_usage(SIGNER_KEY_USAGE)
    except (PathValidationError, PathBuildingError, ValidationError) as exc:
        raise _refusal(exc) from None
    finally:
        await context.aclose()


async def async_sign_pdf(pdf: bytes, request: SignatureRequest, signer: Signer,
                         tsa: TimestampAuthority, trust: TrustSettings,
                         font_path: Path) -> bytes:
    """Return ``pdf`` with the requested signature appended as an incremental update."""
    await async_check_signer_certificate(signer, trust)
    try:
        writer = IncrementalPdfFileWriter(io.BytesIO(pdf), strict=False)
    except (PdfError, ValueError, OSError) as exc:
        raise NotAPdf(f"无法读取 PDF：{exc}", f"cannot read the PDF: {exc}") from None
    existing = {name: value for name, value, _ in pyhanko_fields.enumerate_sig_fields(
        writer.prev, filled_status=None)}
    if request.field not in existing:
        raise SignatureFieldError(f"文档中没有签字栏 {request.field}",
                                  f"the document has no signature field {request.field!r}")
    if existing[request.field] is not None:
        raise SignatureFieldError(f"签字栏 {request.field} 已经签过",
                                  f"signature field {request.field!r} is already signed")
    metadata = PdfSignatureMetadata(
        field_name=request.field,
        md_algorithm="sha256",
        subfilter=SigSeedSubFilter.PADES,
        reason=request.stamp.reason,
        name=request.stamp.name,
        location=request.location or None,
        certify=request.certify,
        docmdp_permissions=MDPPerm.FILL_FORMS,
    )
    out = io.BytesIO()
    try:
        async with aiohttp.ClientSession() as session:
            pdf_signer = VersionKeepingSigner(
                metadata, signer, timestamper=tsa.timestamper(session),
                stamp_style=stamp_style(font_path, request.stamp.seal_image))
            await pdf_signer.async_sign_pdf(
                writer, existing_fields_only=True, output=out,
                appearance_text_params=request.stamp.text_params())
    except (TimeoutError, TimestampRequestError, aiohttp.ClientError, ConnectionError) as exc:
        raise TimestampUnavailable(
            f"时间戳服务不可用（{tsa.url}），未签名",
            f"the timestamp authority {tsa.url} is unavailable ({type(exc).__name__}: {exc}); "
            "nothing was signed") from None
    except SigningError as exc:
        if isinstance(exc.__cause__, TimestampRequestError | aiohttp.ClientError):
            raise TimestampUnavailable(
                f"时间戳服务不可用（{tsa.url}），未签名",
                f"the timestamp authority {tsa.url} is unavailable: {exc}") from None
        raise SigningFailed(f"签名失败：{exc}", f"signing failed: {exc}") from None
    return out.getvalue()


def sign_pdf(pdf: bytes, request: SignatureRequest, signer: Signer, tsa: TimestampAuthority,
             trust: TrustSettings, font_path: Path) -> bytes:
    """Synchronous :func:`async_sign_pdf` (for the CLI; async code awaits the other)."""
    return asyncio.run(async_sign_pdf(pdf, request, signer, tsa, trust, font_path))


async def async_seal_pdf(pdf: bytes, signer: Signer, tsa: TimestampAuthority,
                         trust: TrustSettings, reason: str, field: str = "system-seal") -> bytes:
    """Return ``pdf`` certified by ``signer`` in a new invisible field (no form filling
    allowed afterwards): the system's seal on documents it issues itself."""
    await async_check_signer_certificate(signer, trust)
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf), strict=False)
    metadata = PdfSignatureMetadata(field_name=field, md_algorithm="sha256",
                                    subfilter=SigSeedSubFilter.PADES, reason=reason,
                                    certify=True, docmdp_permissions=MDPPerm.NO_CHANGES)
    out = io.BytesIO()
    try:
        async with aiohttp.ClientSession() as session:
            await VersionKeepingSigner(metadata, signer, timestamper=tsa.timestamper(session)
                                       ).async_sign_pdf(writer, output=out)
    except (TimestampRequestError, aiohttp.ClientError, TimeoutError, ConnectionError) as exc:
        raise TimestampUnavailable("时间戳服务不可用，未签章",
                                   f"the timestamp authority is unavailable: {exc}") from None
    return out.getvalue()


def seal_pdf(pdf: bytes, signer: Signer, tsa: TimestampAuthority, trust: TrustSettings,
             reason: str) -> bytes:
    """Synchronous :func:`async_seal_pdf`."""
    return asyncio.run(async_seal_pdf(pdf, signer, tsa, trust, reason))
