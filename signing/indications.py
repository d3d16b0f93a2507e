"""The ETSI EN 319 102-1 vocabulary of a verdict: each problem found is a :class:`Finding`
carrying its indication (TOTAL_FAILED or INDETERMINATE) and subindication, and a report's
indication is the worst of its findings.

TOTAL_FAILED means the validator is sure the signature is not valid (altered bytes, a value
that does not verify, content changed after signing, a certificate revoked before the
signing time); INDETERMINATE means it cannot tell (a chain to no configured root, missing
revocation data, an algorithm it does not implement). Intact bytes under an unknown chain are
therefore INDETERMINATE, never TOTAL_FAILED.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from pyhanko.sign.ades.report import AdESStatus, AdESSubIndic

TOTAL_PASSED = "TOTAL_PASSED"
INDETERMINATE = "INDETERMINATE"
TOTAL_FAILED = "TOTAL_FAILED"
RANK = {TOTAL_PASSED: 0, INDETERMINATE: 1, TOTAL_FAILED: 2}

# Subindications (ETSI EN 319 102-1, clause 5.1.3) used here by name.
FORMAT_FAILURE = "FORMAT_FAILURE"
HASH_FAILURE = "HASH_FAILURE"
SIG_CRYPTO_FAILURE = "SIG_CRYPTO_FAILURE"
REVOKED = "REVOKED"
SIG_CONSTRAINTS_FAILURE = "SIG_CONSTRAINTS_FAILURE"
CRYPTO_CONSTRAINTS_FAILURE = "CRYPTO_CONSTRAINTS_FAILURE"
NO_CERTIFICATE_CHAIN_FOUND = "NO_CERTIFICATE_CHAIN_FOUND"
REVOKED_NO_POE = "REVOKED_NO_POE"
GENERIC = "GENERIC"


@dataclass(frozen=True)
class Finding:
    """One problem: its ETSI indication and subindication, and a sentence (zh, en)."""

    indication: str
    subindication: str | None
    zh: str
    en: str

    @property
    def text(self) -> str:
        return f"{self.zh} / {self.en}"


def failed(subindication: str, zh: str, en: str) -> Finding:
    return Finding(TOTAL_FAILED, subindication, zh, en)


def indeterminate(subindication: str | None, zh: str, en: str) -> Finding:
    return Finding(INDETERMINATE, subindication, zh, en)


def from_ades(subindic: AdESSubIndic, zh: str, en: str) -> Finding:
    """A finding from pyHanko's AdES subindication (its status decides the indication)."""
    status = subindic.status
    indication = {AdESStatus.FAILED: TOTAL_FAILED, AdESStatus.PASSED: TOTAL_PASSED}.get(
        status, INDETERMINATE)
    return Finding(indication, subindic.standard_name, zh, en)


def verdict(findings: Iterable[Finding]) -> tuple[str, str | None]:
    """Return the (indication, subindication) of the worst finding; TOTAL_PASSED if none.

    Among equally bad findings the first one names the subindication: callers list them
    in the order a person should read them."""
    worst: Finding | None = None
    for finding in findings:
        if worst is None or RANK[finding.indication] > RANK[worst.indication]:
            worst = finding
    if worst is None or worst.indication == TOTAL_PASSED:
        return TOTAL_PASSED, None
    return worst.indication, worst.subindication
