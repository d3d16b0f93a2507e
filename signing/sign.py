"""One party's PAdES signature into its own pre-made field, with an RFC 3161 timestamp.

The first signature of a document certifies it (DocMDP: form filling and signatures allowed);
every later one is an approval signature, so earlier signatures stay valid. The signer's
certificate is validated first — revoked, expired or untrusted certificates sign nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import re
import time
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
from signing.fonts import stamp_subset
from signing.timestamps import TimestampAuthority
from signing.trust import TrustSettings, validation_context

SIGNER_KEY_USAGE = {"non_repudiation"}
# A certificate that passed the pre-check against offline trust (the local CA's CRLs) is not
# checked again for this long: its verdict can only change with the CRLs, which are part of
# the cache key, or with the clock. Trust that fetches revocation data is always asked.
PASSED_CHECK_TTL_S = 60.0
_passed_checks: dict[bytes, float] = {}
# pyHanko sizes a signature by first making a dummy one (a fifth of the signing time); the
# room it reserved for a signer and timestamp authority is kept and reserved again.
_reserved_sizes: dict[tuple[bytes, object], int | None] = {}


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


def _check_key(signer: Signer, trust: TrustSettings) -> bytes:
    digest = hashlib.sha256(signer.signing_cert.dump())
    for item in (*trust.roots, *trust.other_certs, *trust.crls, *(signer.cert_registry or ())):
        digest.update(item.dump())
    return digest.digest()


async def async_check_signer_certificate(signer: Signer, trust: TrustSettings) -> None:
    """Raise CertificateRefused unless the signer's certificate is trusted, current, not
    revoked (revocation data required) and allowed to make non-repudiation signatures."""
    key = None if trust.allow_fetching else _check_key(signer, trust)
    if key is not None and time.monotonic() - _passed_checks.get(key, -1e9) < PASSED_CHECK_TTL_S:
        return
    await _validate_signer(signer, trust)
    if key is not None:
        now = time.monotonic()
        if len(_passed_checks) > 1000:
            for stale in [k for k, at in _passed_checks.items() if now - at >= PASSED_CHECK_TTL_S]:
                del _passed_checks[stale]
        _passed_checks[key] = now


async def _validate_signer(signer: Signer, trust: TrustSettings) -> None:
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
    sizing = (signer.signing_cert.sha256, tsa.url or (tsa.cert.sha256 if tsa.cert else b""))
    reserved = _reserved_sizes.get(sizing)
    try:
        async with aiohttp.ClientSession() as session:
            pdf_signer = VersionKeepingSigner(
                metadata, signer, timestamper=tsa.timestamper(session),
                stamp_style=stamp_style(stamp_subset(font_path, request.stamp.characters()),
                                        request.stamp.seal_image))
            try:
                signed = await _sign_into(pdf_signer, writer, request, reserved)
            except SigningError as exc:
                if reserved is None or "larger than expected" not in str(exc):
                    raise
                # The kept size no longer suffices (the TSA's tokens grew): size it afresh.
                reserved = None
                signed = await _sign_into(pdf_signer, IncrementalPdfFileWriter(
                    io.BytesIO(pdf), strict=False), request, None)
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
    if reserved is None:
        _reserved_sizes[sizing] = _reserved_size(signed[len(pdf):])
    return signed


async def _sign_into(pdf_signer: PdfSigner, writer: IncrementalPdfFileWriter,
                     request: SignatureRequest, reserved: int | None) -> bytes:
    out = io.BytesIO()
    await pdf_signer.async_sign_pdf(writer, existing_fields_only=True, output=out,
                                    bytes_reserved=reserved,
                                    appearance_text_params=request.stamp.text_params())
    return out.getvalue()


def _reserved_size(update: bytes) -> int | None:
    """Return the room pyHanko reserved for the signature in ``update`` (the hex digits
    between the two byte ranges), or None if it cannot be read."""
    found = re.findall(rb"/ByteRange\s*\[\s*\d+\s+(\d+)\s+(\d+)\s+\d+\s*\]", update)
    return int(found[-1][1]) - int(found[-1][0]) - 2 if found else None


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
