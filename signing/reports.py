"""Reports: the verdict on each signature and on the whole document, as the ``verify``
JSON contract shapes them, with the ETSI indications and every finding behind them."""

from __future__ import annotations

from dataclasses import dataclass, field

from pyhanko.sign.validation.pdf_embedded import EmbeddedPdfSignature

from signing import indications as ind
from signing.indications import Finding


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
    indication: str = ind.TOTAL_PASSED
    subindication: str | None = None
    warnings: tuple[str, ...] = ()
    changes: tuple[str, ...] = ()
    findings: tuple[Finding, ...] = field(default=(), repr=False, compare=False)

    def as_dict(self) -> dict:
        return {
            "field": self.field, "signer": self.signer, "valid": self.valid,
            "intact": self.intact, "trusted": self.trusted, "timestamp": self.timestamp,
            "modification_level": self.modification_level, "coverage": self.coverage,
            "certificate_sha256": self.certificate_sha256,
            "signed_revision": self.signed_revision,
            "changed_fields": list(self.changed_fields), "problems": list(self.problems),
            "indication": self.indication, "subindication": self.subindication,
            "warnings": list(self.warnings), "changes_after_signing": list(self.changes),
        }


@dataclass(frozen=True)
class DocumentReport:
    """The verdict on a whole PDF."""

    valid: bool
    signatures: tuple[SignatureReport, ...]
    document_timestamps: tuple[SignatureReport, ...] = ()
    problems: tuple[str, ...] = ()
    indication: str = ind.INDETERMINATE
    subindication: str | None = None
    warnings: tuple[str, ...] = ()
    findings: tuple[Finding, ...] = field(default=(), repr=False, compare=False)

    def as_dict(self) -> dict:
        return {
            "valid": self.valid, "indication": self.indication,
            "subindication": self.subindication,
            "signatures": [s.as_dict() for s in self.signatures],
            "document_timestamps": [s.as_dict() for s in self.document_timestamps],
            "problems": list(self.problems), "warnings": list(self.warnings),
        }

    def first_problem(self) -> Finding | None:
        """The problem a person should read first: the file's own, then each signature's
        in signing order, then the document timestamps'."""
        for findings in (self.findings, *(s.findings for s in self.signatures),
                         *(t.findings for t in self.document_timestamps)):
            if findings:
                return findings[0]
        return None


def signer_name(sig: EmbeddedPdfSignature) -> str:
    try:
        subject = sig.signer_cert.subject.native
    except Exception:  # noqa: BLE001 - a broken certificate still gets a report
        return "?"
    parts = [subject.get("common_name"), subject.get("organizational_unit_name")]
    return " / ".join(str(p) for p in parts if p) or sig.signer_cert.subject.human_friendly


def signature_report(name: str, views: list, results: list[tuple[list[Finding], dict]]
            ) -> SignatureReport:
    """Merge the results of a signature's views (one per SignerInfo) into its report."""
    findings: list[Finding] = []
    for result_findings, _ in results:
        findings += [f for f in result_findings if f not in findings]
    first = results[0][1]
    indication, subindication = ind.verdict(findings)
    warnings = [w for _, fields in results for w in fields["warnings"]]
    return SignatureReport(
        field=name, signer=" + ".join(signer_name(v) for v in views),
        valid=indication == ind.TOTAL_PASSED,
        intact=all(f["intact"] for _, f in results),
        trusted=all(f["trusted"] for _, f in results), timestamp=first["timestamp"],
        modification_level=first["level"], coverage=first["coverage"],
        certificate_sha256=first["certificate"], signed_revision=views[0].signed_revision,
        changed_fields=first["changed"], problems=tuple(f.text for f in findings),
        indication=indication, subindication=subindication,
        warnings=tuple(dict.fromkeys(warnings)), changes=tuple(first["changes"]),
        findings=tuple(findings))


def unreadable_report(name: str, exc: Exception) -> SignatureReport:
    finding = ind.failed(ind.FORMAT_FAILURE, f"签字栏 {name} 中的签名无法读取",
                         f"the signature in field {name} cannot be read: "
                         f"{type(exc).__name__}: {exc}")
    return SignatureReport(
        field=name, signer="?", valid=False, intact=False, trusted=False, timestamp=None,
        modification_level=None, coverage=None, certificate_sha256=None, signed_revision=None,
        problems=(finding.text,), indication=finding.indication,
        subindication=finding.subindication, findings=(finding,))


def document_report(findings: list[Finding], signatures=(), timestamps=()) -> DocumentReport:
    everything = [*findings, *(f for r in (*signatures, *timestamps) for f in r.findings)]
    indication, subindication = ind.verdict(everything)
    if not signatures and not timestamps and indication == ind.TOTAL_PASSED:
        indication = ind.INDETERMINATE
    warnings = [w for r in (*signatures, *timestamps) for w in r.warnings]
    return DocumentReport(
        valid=indication == ind.TOTAL_PASSED, signatures=tuple(signatures),
        document_timestamps=tuple(timestamps), problems=tuple(f.text for f in findings),
        indication=indication, subindication=subindication, warnings=tuple(warnings),
        findings=tuple(findings))


