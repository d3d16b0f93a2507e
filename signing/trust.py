"""Which certificates are trusted and where revocation data comes from.

Every validation in the project builds its ValidationContext here, with revocation checking
*required*: pyHanko's default soft-fail mode passes a signature with no revocation data at
all, which is exactly what an auditor must never accept.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from asn1crypto import crl as asn1_crl
from asn1crypto import x509 as asn1_x509
from pyhanko.keys import load_certs_from_pemder_data
from pyhanko_certvalidator import ValidationContext

from signing.cms_support import TolerantSignatureValidator

# Every certificate but the trust anchor needs revocation data (OCSP or CRL) that says it is
# good; missing or unreachable data fails the validation.
REVOCATION_MODE = "require"


@dataclass(frozen=True)
class TrustSettings:
    """Trust roots, extra certificates for path building, and known revocation data.

    ``allow_fetching`` lets validation ask OCSP responders and CRL repositories named in the
    certificates; without it only embedded data and ``crls`` count.
    """

    roots: tuple[asn1_x509.Certificate, ...]
    other_certs: tuple[asn1_x509.Certificate, ...] = ()
    crls: tuple[asn1_crl.CertificateList, ...] = ()
    allow_fetching: bool = True

    def offline(self) -> TrustSettings:
        """The same trust, with no network access: what an archive must validate against."""
        return TrustSettings(self.roots, self.other_certs, self.crls, allow_fetching=False)


def validation_context(trust: TrustSettings, *, moment: datetime | None = None,
                       fetch: bool | None = None, ocsps: Iterable = (),
                       crls: Iterable = ()) -> ValidationContext:
    """Return a ValidationContext for ``trust`` that requires revocation data."""
    return ValidationContext(
        trust_roots=list(trust.roots),
        other_certs=list(trust.other_certs),
        crls=[*trust.crls, *crls],
        ocsps=list(ocsps),
        allow_fetching=trust.allow_fetching if fetch is None else fetch,
        revocation_mode=REVOCATION_MODE,
        moment=moment,
        signature_validator=TolerantSignatureValidator(),
    )


def load_certificates(data: bytes) -> list[asn1_x509.Certificate]:
    """Return every certificate in PEM or DER ``data``."""
    return list(load_certs_from_pemder_data(data))
