"""The validation helper every later step uses: what counts as a valid signature here.

Each signature and document timestamp gets an ETSI EN 319 102-1 verdict
(:mod:`signing.indications`): TOTAL_PASSED, INDETERMINATE (cannot tell: a chain to no
configured root, missing revocation data, an algorithm not implemented, no timestamp) or
TOTAL_FAILED (sure it is not valid). It is TOTAL_PASSED only if all of these hold:
- it is intact and its value verifies (plain ``r||s`` ECDSA values included);
- its certificate chains to the configured roots, with revocation checked and *required*;
- it carries an RFC 3161 timestamp over its own value that itself validates;
- it covers its whole revision (whitespace after ``%%EOF`` is not a modification);
- every later revision passes pyHanko's difference analysis (:mod:`signing.diff_rules`) and
  stays within the certification's DocMDP level; in an uncertified document, additions that
  do not touch what was signed (comments, form filling) are warnings, while annotations that
  paint over the page, and content, page, font or field changes, are TOTAL_FAILED with the
  change named in words (:mod:`signing.changes`).

Document timestamps are recognised by their SubFilter (``ETSI.RFC3161``) even when typed
``/Sig`` or untyped; a CMS with several SignerInfos is checked SignerInfo by SignerInfo; a
file encrypted with an empty user password is opened with it. Whatever the input, the answer
is a report, never an exception.

``offline=True`` validates an archived document with no network: revocation data and
certificates come from the document's DSS, and the signature is judged at its timestamp's
time, accepting revocation data gathered after it (PAdES B-LT/B-LTA).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
from datetime import datetime

from pyhanko.pdf_utils import misc
from pyhanko.pdf_utils.crypt import AuthStatus
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.ades.report import AdESIndeterminate
from pyhanko.sign.fields import enumerate_sig_fields
from pyhanko.sign.general import find_unique_cms_attribute
from pyhanko.sign.validation import KeyUsageConstraints
from pyhanko.sign.validation.dss import DocumentSecurityStore
from pyhanko.sign.validation.errors import SignatureValidationError
from pyhanko.sign.validation.generic_cms import extract_tst_data_iter, validate_tst_signed_data
from pyhanko.sign.validation.pdf_embedded import (
    EmbeddedPdfSignature,
    async_validate_pdf_signature,
    read_certification_data,
)
from pyhanko.sign.validation.status import DocumentTimestampStatus, SignatureCoverageLevel
from pyhanko_certvalidator import ValidationContext

from signing import indications as ind
from signing.cms_support import (
    TolerantSignatureValidator,
    UnsupportedAlgorithm,
    signature_views,
)
from signing.diff_rules import POLICY
from signing.indications import Finding
from signing.keys import certificate_sha256
from signing.modifications import DocumentFacts, modification_findings
from signing.reports import (
    DocumentReport,
    document_report,
    signature_report,
    unreadable_report,
)
from signing.trust import TrustSettings, validation_context

KEY_USAGE = KeyUsageConstraints(key_usage={"non_repudiation"})
TIMESTAMP_SUBFILTER = "/ETSI.RFC3161"
SIGNATURE_SUBFILTERS = {"/adbe.pkcs7.detached", "/ETSI.CAdES.detached"}
WHITESPACE = b"\r\n\t\f \x00"
# What a malformed signature raises while parsed (a sure failure); anything else means it
# could not be checked (INDETERMINATE).
MALFORMED = (misc.PdfError, ValueError, KeyError, TypeError, IndexError, AttributeError)


def signature_timestamp_time(sig: EmbeddedPdfSignature) -> datetime | None:
    """Return the genTime of the signature's embedded RFC 3161 timestamp, if any."""
    for token in extract_tst_data_iter(sig.signer_info, signed=False):
        return token["encap_content_info"]["content"].parsed["gen_time"].native
    return None


def _digest_intact(sig: EmbeddedPdfSignature) -> bool:
    """Whether the byte range still hashes to the digest the signer signed."""
    try:
        claimed = find_unique_cms_attribute(sig.signer_info["signed_attrs"], "message_digest")
        return claimed.native == sig.compute_digest()
    except Exception:  # noqa: BLE001
        return False


def _imprint_matches(sig: EmbeddedPdfSignature) -> bool:
    """Whether the signature timestamp's message imprint is the hash of this signature's
    value (a timestamp copied from another signature is not)."""
    for token in extract_tst_data_iter(sig.signer_info, signed=False):
        imprint = token["encap_content_info"]["content"].parsed["message_imprint"]
        algorithm = imprint["hash_algorithm"]["algorithm"].native
        value = sig.signer_info["signature"].native
        try:
            return hashlib.new(algorithm, value).digest() == imprint["hashed_message"].native
        except ValueError:
            return True  # an unknown hash: pyHanko's own check decides
    return True


def _trust_finding(status, timestamp: datetime | None) -> Finding:
    """The finding for an untrusted signing certificate; ``timestamp`` is the time the
    signature's timestamp proves (a revocation before it is a sure failure)."""
    indic = status.trust_problem_indic or AdESIndeterminate.NO_CERTIFICATE_CHAIN_FOUND
    if indic in (AdESIndeterminate.REVOKED_NO_POE, AdESIndeterminate.REVOKED_CA_NO_POE):
        details = getattr(status, "revocation_details", None)
        revoked_at = details.revocation_date if details else None
        if timestamp is not None and revoked_at is not None and timestamp >= revoked_at:
            return ind.failed(ind.REVOKED, "签名证书在签署前已被吊销",
                              f"the signing certificate is revoked: revoked before the signing "
                              f"time ({revoked_at.isoformat()})")
        return ind.from_ades(indic, "签名证书已被吊销", "the signing certificate is revoked")
    if indic == AdESIndeterminate.NO_CERTIFICATE_CHAIN_FOUND:
        return ind.from_ades(indic, "证书链不可信：没有连到受信任的根证书",
                             f"certificate not trusted ({indic.standard_name}): it does not "
                             "chain to a configured root")
    return ind.from_ades(indic, "证书链不可信或吊销状态未知",
                         f"certificate not trusted ({indic.standard_name})")


def _timestamp_findings(sig: EmbeddedPdfSignature, status) -> list[Finding]:
    tsv = status.timestamp_validity
    if tsv is None:
        return [ind.indeterminate(ind.SIG_CONSTRAINTS_FAILURE, "缺少时间戳",
                                  "no RFC 3161 timestamp")]
    if not _imprint_matches(sig):
        return [ind.failed(ind.HASH_FAILURE, "签名时间戳属于另一个签名（被复制的时间戳）",
                           "the signature timestamp was copied from another signature: its "
                           "message imprint does not match this signature's value")]
    if not tsv.intact:
        return [ind.failed(ind.HASH_FAILURE, "签名时间戳已被改动",
                           "the signature timestamp is broken: its content was altered")]
    if not tsv.valid:
        return [ind.failed(ind.SIG_CRYPTO_FAILURE, "签名时间戳本身的签名无效",
                           "the signature timestamp is broken: its own signature does not "
                           "verify")]
    if not tsv.trusted:
        indic = tsv.trust_problem_indic or AdESIndeterminate.NO_CERTIFICATE_CHAIN_FOUND
        return [ind.from_ades(indic, "时间戳机构不受信任",
                              f"the timestamp authority is not trusted "
                              f"({indic.standard_name})")]
    return []


def _unchecked(exc: Exception) -> Finding:
    return ind.indeterminate(ind.GENERIC, "验证时出错，无法确定",
                             f"the signature could not be checked: {type(exc).__name__}: {exc}")


def _altered(sig: EmbeddedPdfSignature, fields: dict) -> list[Finding]:
    """When the value cannot be checked, the digest still can: altered bytes fail."""
    fields["intact"] = _digest_intact(sig)
    if fields["intact"]:
        return []
    return [ind.failed(ind.HASH_FAILURE, "签名覆盖的内容已被改动",
                       "the signed bytes were altered (digest mismatch)")]


async def _validate_view(sig: EmbeddedPdfSignature, doc: DocumentFacts,
                         context: ValidationContext) -> tuple[list[Finding], dict]:
    """Validate one signature (or one SignerInfo of it): (findings, report fields)."""
    fields = {"intact": False, "trusted": False, "timestamp": None, "level": None,
              "coverage": None, "certificate": None, "changed": (), "warnings": [],
              "changes": []}
    subfilter = sig.sig_object.get("/SubFilter")
    if subfilter not in SIGNATURE_SUBFILTERS:
        return [ind.indeterminate(ind.SIG_CONSTRAINTS_FAILURE, f"不支持的签名格式 {subfilter}",
                                  f"the signature format {subfilter} is not supported "
                                  "(only CMS detached signatures are)")], fields
    try:
        status = await async_validate_pdf_signature(
            sig, signer_validation_context=context, ts_validation_context=context,
            key_usage_settings=KEY_USAGE, diff_policy=POLICY)
    except UnsupportedAlgorithm as exc:
        return _altered(sig, fields) + [ind.indeterminate(
            ind.CRYPTO_CONSTRAINTS_FAILURE, "不支持的签名算法，无法核验签名值",
            f"the signature algorithm is not supported, so its value cannot be checked "
            f"({exc})")], fields
    except SignatureValidationError as exc:
        return _altered(sig, fields) + [ind.from_ades(
            exc.ades_subindication, "签名无法验证",
            f"the signature cannot be validated: {exc.failure_message}")], fields
    except MALFORMED as exc:
        return [ind.failed(ind.FORMAT_FAILURE, "签名结构损坏，无法验证",
                           f"the signature is malformed: {type(exc).__name__}: {exc}")], fields
    except Exception as exc:  # noqa: BLE001 - hostile input: a verdict, never a crash
        return [_unchecked(exc)], fields
    findings: list[Finding] = []
    if not status.intact:
        findings.append(ind.failed(ind.HASH_FAILURE, "签名覆盖的内容已被改动",
                                   "the signed bytes were altered (digest mismatch)"))
    if not status.valid:
        findings.append(ind.failed(ind.SIG_CRYPTO_FAILURE, "签名值无效",
                                   "the cryptographic signature value does not verify"))
    tsv = status.timestamp_validity
    proven = tsv is not None and tsv.valid and tsv.intact and tsv.trusted
    when = tsv.timestamp if proven and _imprint_matches(sig) else None
    if status.intact and status.valid and not status.trusted:
        findings.append(_trust_finding(status, when))
    findings += _timestamp_findings(sig, status)
    coverage = status.coverage
    if (coverage == SignatureCoverageLevel.ENTIRE_REVISION and doc.whitespace_tail
            and sig.signed_revision == doc.last_revision):
        coverage = SignatureCoverageLevel.ENTIRE_FILE  # only whitespace after %%EOF
    more, warnings, changes = modification_findings(sig, status.diff_result, coverage, doc)
    diff = status.diff_result
    fields.update(
        intact=status.intact, trusted=status.trusted,
        timestamp=tsv.timestamp.isoformat() if tsv is not None else None,
        level=(diff.modification_level.name if hasattr(diff, "modification_level")
               else "OTHER"), coverage=coverage.name if coverage else None,
        certificate=certificate_sha256(status.signing_cert),
        changed=tuple(sorted(getattr(diff, "changed_form_fields", ()))),
        warnings=warnings, changes=[c.en for c in changes])
    return findings + more, fields


async def _validate_timestamp_view(sig: EmbeddedPdfSignature, doc: DocumentFacts,
                                   context: ValidationContext) -> tuple[list[Finding], dict]:
    """Validate a document timestamp, however its dictionary is typed."""
    fields = {"intact": False, "trusted": False, "timestamp": None, "level": None,
              "coverage": None, "certificate": None, "changed": (), "warnings": [],
              "changes": []}
    try:
        sig.compute_integrity_info(diff_policy=POLICY)
        kwargs = await validate_tst_signed_data(sig.signed_data, context, sig.compute_digest)
        status = DocumentTimestampStatus(**kwargs, coverage=sig.coverage,
                                         diff_result=sig.diff_result)
    except SignatureValidationError as exc:
        return [ind.from_ades(exc.ades_subindication, "文档时间戳无法验证",
                              f"the document timestamp cannot be validated: "
                              f"{exc.failure_message}")], fields
    except MALFORMED as exc:
        return [ind.failed(ind.FORMAT_FAILURE, "文档时间戳结构损坏",
                           f"the document timestamp is malformed: {type(exc).__name__}: "
                           f"{exc}")], fields
    except Exception as exc:  # noqa: BLE001 - a verdict, never a crash
        return [_unchecked(exc)], fields
    findings: list[Finding] = []
    if not status.intact:
        findings.append(ind.failed(ind.HASH_FAILURE, "文档时间戳覆盖的内容已被改动",
                                   "the timestamped bytes were altered (digest mismatch)"))
    elif not status.valid:
        findings.append(ind.failed(ind.SIG_CRYPTO_FAILURE, "文档时间戳的签名无效",
                                   "the document timestamp's signature does not verify"))
    elif not status.trusted:
        indic = status.trust_problem_indic or AdESIndeterminate.NO_CERTIFICATE_CHAIN_FOUND
        findings.append(ind.from_ades(indic, "时间戳机构不受信任",
                                      f"the timestamp authority is not trusted "
                                      f"({indic.standard_name})"))
    more, warnings, changes = modification_findings(sig, status.diff_result, status.coverage,
                                                     doc)
    kind = sig.sig_object.get("/Type")
    if kind != "/DocTimeStamp":
        warnings.append(f"文档时间戳的类型为 {kind or '（无）'} / the document timestamp's "
                        f"dictionary is typed {kind or '(untyped)'}, not /DocTimeStamp")
    diff = status.diff_result
    fields.update(
        intact=status.intact, trusted=status.trusted, timestamp=status.timestamp.isoformat(),
        level=(diff.modification_level.name if hasattr(diff, "modification_level")
               else "OTHER"),
        coverage=status.coverage.name if status.coverage else None,
        certificate=certificate_sha256(status.signing_cert), warnings=warnings,
        changes=[c.en for c in changes])
    return findings + more, fields


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
              "revocation_mode": "require", "retroactive_revinfo": True, "moment": moment,
              "signature_validator": TolerantSignatureValidator()}
    return dss.as_validation_context(kwargs) if dss else ValidationContext(**kwargs)


def _open(pdf: bytes) -> tuple[PdfFileReader | None, Finding | None]:
    """Open ``pdf`` (an empty user password is tried): (reader, None) or (None, why not)."""
    try:
        reader = PdfFileReader(io.BytesIO(pdf), strict=False)
        if reader.encrypted and reader.decrypt(b"").status == AuthStatus.FAILED:
            return None, ind.indeterminate(None, "文件已加密，需要口令才能验证",
                                           "the file is encrypted with a password: it cannot "
                                           "be checked without it")
        return reader, None
    except Exception as exc:  # noqa: BLE001 - hostile input: a verdict, never a crash
        return None, ind.failed(ind.FORMAT_FAILURE, "无法解析 PDF",
                                f"cannot parse the PDF: {type(exc).__name__}: {exc}")


def _tail(pdf: bytes) -> bytes:
    end = pdf.rfind(b"%%EOF")
    return pdf[end + 5:] if end >= 0 else pdf


async def async_validate_pdf(pdf: bytes, trust: TrustSettings, *, offline: bool = False
                             ) -> DocumentReport:
    """Return the verdict on every signature and document timestamp of ``pdf``."""
    reader, problem = _open(pdf)
    if reader is None:
        return document_report([problem])
    try:
        entries = []
        for name, _, sig_field in enumerate_sig_fields(reader, filled_status=True):
            try:
                views = signature_views(reader, sig_field, name)
                entries.append((views[0].signed_revision, name, views))
            except Exception as exc:  # noqa: BLE001 - one unreadable signature, reported
                entries.append((-1, name, exc))
        certification = read_certification_data(reader)
        last_revision = reader.xrefs.total_revisions - 1
    except Exception as exc:  # noqa: BLE001
        return document_report([ind.failed(ind.FORMAT_FAILURE, "无法解析 PDF",
                                            f"cannot parse the PDF: {type(exc).__name__}: "
                                            f"{exc}")])
    if not entries:
        return document_report([ind.indeterminate(None, "文档没有签名",
                                                   "the document has no signature")])
    certified_at = None
    if certification is not None:
        try:
            ref = reader.root["/Perms"].raw_get("/DocMDP").reference
            certified_at = (certification.permission, reader.xrefs.get_last_change(ref))
        except Exception:  # noqa: BLE001 - an unreadable certification: treat as absent
            certified_at = None
    tail = _tail(pdf)
    doc = DocumentFacts(reader=reader, last_revision=last_revision,
                    whitespace_tail=not tail.strip(WHITESPACE), certification=certified_at)
    dss = _read_dss(reader) if offline else None  # read once, for every signature

    def context_for(sig: EmbeddedPdfSignature | None) -> ValidationContext:
        if not offline:
            return validation_context(trust)
        try:  # an archived signature is judged at its own timestamp's time
            moment = signature_timestamp_time(sig) if sig is not None else None
        except Exception:  # noqa: BLE001
            moment = None
        return _offline_context(trust, dss, moment)

    signatures, timestamps = [], []
    for _, name, views in sorted(entries, key=lambda e: e[0]):
        if isinstance(views, Exception):
            signatures.append(unreadable_report(name, views))
            continue
        is_timestamp = (views[0].sig_object.get("/SubFilter") == TIMESTAMP_SUBFILTER
                        or views[0].sig_object.get("/Type") == "/DocTimeStamp")
        results = []
        for view in views:
            context = context_for(None if is_timestamp else view)
            try:
                check = _validate_timestamp_view if is_timestamp else _validate_view
                results.append(await check(view, doc, context))
            finally:
                await context.aclose()
        (timestamps if is_timestamp else signatures).append(signature_report(name, views, results))
    findings = []
    if tail.strip(WHITESPACE):
        findings.append(ind.failed(ind.FORMAT_FAILURE, "文件末尾有未签名的内容",
                                   "there is content after the end of the last revision "
                                   "(not covered by any signature)"))
    return document_report(findings, signatures, timestamps)


def validate_pdf(pdf: bytes, trust: TrustSettings, *, offline: bool = False) -> DocumentReport:
    """Synchronous :func:`async_validate_pdf`."""
    return asyncio.run(async_validate_pdf(pdf, trust, offline=offline))
