"""The validation helper every later step uses: what counts as a valid signature here.

A signature is valid only if all of these hold:
- parsing and validating raised nothing (any exception is INDETERMINATE, never a crash);
- it is intact and cryptographically valid;
- its certificate chains to the configured roots, with revocation checked and *required*;
- it carries an RFC 3161 timestamp that itself validates;
- it covers its whole revision;
- every later revision is at most form filling, changing only the signature fields that
  later signatures filled (pyHanko's AdES verdict alone ignores content added after
  signing, so the classic modification analysis decides this);
- the DocMDP permissions of the certification signature are respected.

``offline=True`` validates an archived document with no network: revocation data and
certificates come from the document's DSS, and the signature is judged at its timestamp's
time, accepting revocation data gathered after it (PAdES B-LT/B-LTA).
"""

from __future__ import annotations

import asyncio
import io
from dataclasses import dataclass, field
from datetime import datetime

from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.diff_analysis import ModificationLevel
from pyhanko.sign.validation import KeyUsageConstraints
from pyhanko.sign.validation.dss import DocumentSecurityStore
from pyhanko.sign.validation.generic_cms import extract_tst_data_iter
from pyhanko.sign.validation.pdf_embedded import (
    EmbeddedPdfSignature,
    async_validate_pdf_signature,
    async_validate_pdf_timestamp,
)
from pyhanko.sign.validation.status import SignatureCoverageLevel
from pyhanko_certvalidator import ValidationContext

from signing.keys import certificate_sha256
from signing.trust import TrustSettings, validation_context

KEY_USAGE = KeyUsageConstraints(key_usage={"non_repudiation"})


@dataclass(frozen=True)
class SignatureReport:
    """The verdict on one signature (the ``verify`` JSON contract, plus details)."""

    field: str
    signer: str
    valid: bool
    intact: bool
    trusted: bool
    timestamp: str | None
    modification_level: str | None
    coverage: str | None
    certificate_sha256: str | None
    signed_revision: int | None
    changed_fields: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()

    def as_dict(self) -> dict:
        return {
            "field": self.field, "signer": self.signer, "valid": self.valid,
            "intact": self.intact, "trusted": self.trusted, "timestamp": self.timestamp,
            "modification_level": self.modification_level, "coverage": self.coverage,
            "certificate_sha256": self.certificate_sha256,
            "signed_revision": self.signed_revision,
            "changed_fields": list(self.changed_fields), "problems": list(self.problems),
        }


@dataclass(frozen=True)
class DocumentReport:
    """The verdict on a whole PDF."""

    valid: bool
    signatures: tuple[SignatureReport, ...]
    document_timestamps: tuple[SignatureReport, ...] = ()
    problems: tuple[str, ...] = field(default=())

    def as_dict(self) -> dict:
        return {
            "valid": self.valid,
            "signatures": [s.as_dict() for s in self.signatures],
            "document_timestamps": [s.as_dict() for s in self.document_timestamps],
            "problems": list(self.problems),
        }


def _signer_name(sig: EmbeddedPdfSignature) -> str:
    try:
        subject = sig.signer_cert.subject.native
    except Exception:  # noqa: BLE001 - a broken certificate still gets a report
        return "?"
    parts = [subject.get("common_name"), subject.get("organizational_unit_name")]
    return " / ".join(str(p) for p in parts if p) or sig.signer_cert.subject.human_friendly


def signature_timestamp_time(sig: EmbeddedPdfSignature) -> datetime | None:
    """Return the genTime of the signature's embedded RFC 3161 timestamp, if any."""
    for token in extract_tst_data_iter(sig.signer_info, signed=False):
        return token["encap_content_info"]["content"].parsed["gen_time"].native
    return None


def _indeterminate(sig: EmbeddedPdfSignature, exc: Exception, signer: str) -> SignatureReport:
    name = getattr(sig, "field_name", "?")
    return SignatureReport(
        field=str(name), signer=signer, valid=False, intact=False, trusted=False,
        timestamp=None, modification_level=None, coverage=None, certificate_sha256=None,
        signed_revision=None,
        problems=(f"无法确定（验证时出错）/ INDETERMINATE: {type(exc).__name__}: {exc}",))


async def _validate_one(sig: EmbeddedPdfSignature, later_fields: set[str],
                        context: ValidationContext) -> SignatureReport:
    signer = _signer_name(sig)
    try:
        status = await async_validate_pdf_signature(
            sig, signer_validation_context=context, ts_validation_context=context,
            key_usage_settings=KEY_USAGE)
    except Exception as exc:  # noqa: BLE001 - any exception is INDETERMINATE, never a crash
        return _indeterminate(sig, exc, signer)
    problems: list[str] = []
    if not status.intact:
        problems.append("签名覆盖的内容已被改动 / the signed bytes were altered (digest mismatch)")
    if not status.valid:
        problems.append("签名值无效 / the cryptographic signature does not verify")
    if not status.trusted:
        reason = status.trust_problem_indic.name if status.trust_problem_indic else "untrusted"
        if status.revoked:
            problems.append("签名证书已被吊销 / the signing certificate is revoked")
        else:
            problems.append(f"证书链不可信或吊销状态未知 / certificate not trusted ({reason})")
    ts = status.timestamp_validity
    if ts is None:
        problems.append("缺少时间戳 / no RFC 3161 timestamp")
    elif not (ts.intact and ts.valid and ts.trusted):
        problems.append("时间戳无效 / the timestamp does not validate")
    if status.coverage not in (SignatureCoverageLevel.ENTIRE_FILE,
                               SignatureCoverageLevel.ENTIRE_REVISION):
        problems.append(f"签名未覆盖整个修订版本 / the signature does not cover its whole revision "
                        f"({status.coverage.name if status.coverage else 'unknown'})")
    level = status.modification_level
    if level is None or level > ModificationLevel.FORM_FILLING:
        problems.append(f"签名后文档内容被修改 / the document was modified after signing "
                        f"({level.name if level else 'unknown'})")
    if status.docmdp_ok is False:
        problems.append("违反认证签名的修改权限 / the certification (DocMDP) permissions "
                        "were violated")
    changed: tuple[str, ...] = ()
    diff = status.diff_result
    if diff is not None and hasattr(diff, "changed_form_fields"):
        changed = tuple(sorted(diff.changed_form_fields))
        unexpected = [name for name in changed if name not in later_fields]
        if unexpected:
            problems.append(f"签名后修改了其他表单字段 / fields changed after signing that no "
                            f"later signature explains: {', '.join(unexpected)}")
    elif diff is not None:
        problems.append(f"可疑修改 / suspicious modification: {diff}")
    return SignatureReport(
        field=str(sig.field_name), signer=signer, valid=not problems, intact=status.intact,
        trusted=status.trusted, timestamp=ts.timestamp.isoformat() if ts else None,
        modification_level=level.name if level else None,
        coverage=status.coverage.name if status.coverage else None,
        certificate_sha256=certificate_sha256(status.signing_cert),
        signed_revision=sig.signed_revision, changed_fields=changed,
        problems=tuple(problems))


async def _validate_timestamp(sig: EmbeddedPdfSignature,
                              context: ValidationContext) -> SignatureReport:
    try:
        status = await async_validate_pdf_timestamp(sig, validation_context=context)
    except Exception as exc:  # noqa: BLE001
        return _indeterminate(sig, exc, "document timestamp")
    problems = []
    if not (status.intact and status.valid and status.trusted):
        problems.append("文档时间戳无效 / the document timestamp does not validate")
    level = status.modification_level
    if level is not None and level > ModificationLevel.LTA_UPDATES:
        problems.append(f"时间戳后文档被修改 / modified after the document timestamp "
                        f"({level.name})")
    return SignatureReport(
        field=str(sig.field_name), signer=_signer_name(sig), valid=not problems,
        intact=status.intact, trusted=status.trusted, timestamp=status.timestamp.isoformat(),
        modification_level=level.name if level else None,
        coverage=status.coverage.name if status.coverage else None,
        certificate_sha256=certificate_sha256(status.signing_cert),
        signed_revision=sig.signed_revision, problems=tuple(problems))


def _read_dss(reader: PdfFileReader) -> DocumentSecurityStore | None:
    """Return the document's security store, or None when it has none (or a broken one)."""
    try:
        return DocumentSecurityStore.read_dss(reader)
    except Exception:  # noqa: BLE001 - no DSS: nothing but the configured trust
        return None


def _offline_context(trust: TrustSettings, dss: DocumentSecurityStore | None,
                     moment: datetime | None) -> ValidationContext:
    kwargs = {"trust_roots": list(trust.roots), "other_certs": list(trust.other_certs),
              "crls": list(trust.crls), "allow_fetching": False,
              "revocation_mode": "require", "retroactive_revinfo": True, "moment": moment}
    return dss.as_validation_context(kwargs) if dss else ValidationContext(**kwargs)


async def async_validate_pdf(pdf: bytes, trust: TrustSettings, *, offline: bool = False
                             ) -> DocumentReport:
    """Return the verdict on every signature and document timestamp of ``pdf``."""
    try:
        reader = PdfFileReader(io.BytesIO(pdf), strict=False)
        signatures = sorted(reader.embedded_regular_signatures,
                            key=lambda s: s.signed_revision)
        timestamps = list(reader.embedded_timestamp_signatures)
    except Exception as exc:  # noqa: BLE001 - hostile input: a verdict, never a crash
        return DocumentReport(valid=False, signatures=(), problems=(
            f"无法解析 PDF / cannot parse the PDF: {type(exc).__name__}: {exc}",))
    if not signatures:
        return DocumentReport(valid=False, signatures=(),
                              problems=("文档没有签名 / the document has no signature",))
    dss = _read_dss(reader) if offline else None  # read once, for every signature

    def context_for(sig: EmbeddedPdfSignature | None) -> ValidationContext:
        if not offline:
            return validation_context(trust)
        try:  # an archived signature is judged at its own timestamp's time
            moment = signature_timestamp_time(sig) if sig is not None else None
        except Exception:  # noqa: BLE001
            moment = None
        return _offline_context(trust, dss, moment)

    reports = []
    for index, sig in enumerate(signatures):
        later = {str(s.field_name) for s in signatures[index + 1:]}
        later |= {str(s.field_name) for s in timestamps}
        context = context_for(sig)
        try:
            reports.append(await _validate_one(sig, later, context))
        finally:
            await context.aclose()
    ts_reports = []
    for sig in timestamps:
        context = context_for(None)
        try:
            ts_reports.append(await _validate_timestamp(sig, context))
        finally:
            await context.aclose()
    problems = _file_end_problems(pdf, reader, [*signatures, *timestamps],
                                  [*reports, *ts_reports])
    valid = (all(r.valid for r in reports) and all(r.valid for r in ts_reports)
             and not problems)
    return DocumentReport(valid=valid, signatures=tuple(reports),
                          document_timestamps=tuple(ts_reports), problems=tuple(problems))


def _file_end_problems(pdf: bytes, reader: PdfFileReader, signed: list,
                       reports: list[SignatureReport]) -> list[str]:
    """Bytes after the last revision, or a last revision its signature does not cover
    entirely, are room for content no signature vouches for (signature wrapping)."""
    problems = []
    if not pdf.rstrip(b"\r\n\t \x00").endswith(b"%%EOF"):
        problems.append("文件末尾有未签名的内容 / there is content after the end of the last "
                        "revision (not covered by any signature)")
    last_revision = reader.xrefs.total_revisions - 1
    for sig, report in zip(signed, reports, strict=True):
        if sig.signed_revision == last_revision and report.coverage not in (
                None, SignatureCoverageLevel.ENTIRE_FILE.name):
            problems.append(f"最后的签名 {report.field} 未覆盖整个文件 / the last signature "
                            f"({report.field}) does not cover the whole file")
    return problems


def validate_pdf(pdf: bytes, trust: TrustSettings, *, offline: bool = False) -> DocumentReport:
    """Synchronous :func:`async_validate_pdf`."""
    return asyncio.run(async_validate_pdf(pdf, trust, offline=offline))
