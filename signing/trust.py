"""Which certificates are trusted and where revocation data comes from.

Every validation in the project builds its ValidationContext here, with revocation checking
*required*: pyHanko's default soft-fail mode passes a signature with no revocation data at
all, which is exactly what an auditor must never accept.

The URLs validation fetches from (OCSP responders, CRL repositories, issuer certificates)
are named by the certificates being checked — in an uploaded PDF, by whoever made it. A
``fetch_allow`` list of URL prefixes confines fetching to the operator's own PKI: any other
URL, including the target of a redirect, is refused before a connection is made.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime

import aiohttp
from asn1crypto import crl as asn1_crl
from asn1crypto import x509 as asn1_x509
from pyhanko.keys import load_certs_from_pemder_data
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.fetchers import OwnedFetcherBackend
from pyhanko_certvalidator.fetchers.aiohttp_fetchers import AIOHttpFetcherBackend
from pyhanko_certvalidator.fetchers.aiohttp_fetchers.util import LazySession
from pyhanko_certvalidator.fetchers.api import FetchLimits
from yarl import URL

from signing.cms_support import TolerantSignatureValidator

# Every certificate but the trust anchor needs revocation data (OCSP or CRL) that says it is
# good; missing or unreachable data fails the validation.
REVOCATION_MODE = "require"


@dataclass(frozen=True)
class TrustSettings:
    """Trust roots, extra certificates for path building, and known revocation data.

    ``allow_fetching`` lets validation ask OCSP responders and CRL repositories named in the
    certificates; without it only embedded data and ``crls`` count. ``fetch_allow``, when
    not None, limits fetching to URLs starting with one of its prefixes.
    """

    roots: tuple[asn1_x509.Certificate, ...]
    other_certs: tuple[asn1_x509.Certificate, ...] = ()
    crls: tuple[asn1_crl.CertificateList, ...] = ()
    allow_fetching: bool = True
    fetch_allow: tuple[str, ...] | None = None

    def offline(self) -> TrustSettings:
        """The same trust, with no network access: what an archive must validate against."""
        return replace(self, allow_fetching=False)


class FetchRefused(aiohttp.ClientError):
    """A URL outside the allow-list: refused before any connection is made."""


def allowed_url(url: str, prefixes: tuple[str, ...]) -> bool:
    """Return True if ``url`` starts with one of ``prefixes`` (compared case-insensitively
    in scheme and host, exactly in the path)."""
    parsed = URL(url)
    for prefix in prefixes:
        allowed = URL(prefix)
        if (parsed.scheme.lower(), (parsed.host or "").lower(), parsed.port) != (
                allowed.scheme.lower(), (allowed.host or "").lower(), allowed.port):
            continue
        if parsed.raw_path.startswith(allowed.raw_path.rstrip("/") + "/") or \
                parsed.raw_path == allowed.raw_path or allowed.raw_path in ("", "/"):
            return True
    return False


class _AllowListSession(LazySession):
    """A lazily made aiohttp session whose every request (redirects included) must be on
    the allow-list."""

    def __init__(self, prefixes: tuple[str, ...]) -> None:
        super().__init__()
        self.prefixes = prefixes

    def get_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            prefixes = self.prefixes

            async def only_allowed(request: aiohttp.ClientRequest, handler):
                if not allowed_url(str(request.url), prefixes):
                    raise FetchRefused(f"fetching {request.url} is not allowed")
                return await handler(request)

            self._session = aiohttp.ClientSession(middlewares=(only_allowed,))
        return self._session


def _fetcher_backend(trust: TrustSettings) -> OwnedFetcherBackend | None:
    if trust.fetch_allow is None:
        return None  # pyHanko's own backend, fetching whatever the certificates name
    return OwnedFetcherBackend(AIOHttpFetcherBackend(
        session=_AllowListSession(trust.fetch_allow),
        limits=FetchLimits(max_requests=50, max_cert_requests=10)))


def validation_context(trust: TrustSettings, *, moment: datetime | None = None,
                       fetch: bool | None = None, ocsps: Iterable = (),
                       crls: Iterable = ()) -> ValidationContext:
    """Return a ValidationContext for ``trust`` that requires revocation data."""
    allow = trust.allow_fetching if fetch is None else fetch
    return ValidationContext(
        trust_roots=list(trust.roots),
        other_certs=list(trust.other_certs),
        crls=[*trust.crls, *crls],
        ocsps=list(ocsps),
        allow_fetching=allow,
        fetcher_backend=_fetcher_backend(trust) if allow else None,
        revocation_mode=REVOCATION_MODE,
        moment=moment,
        signature_validator=TolerantSignatureValidator(),
    )


def load_certificates(data: bytes) -> list[asn1_x509.Certificate]:
    """Return every certificate in PEM or DER ``data``."""
    return list(load_certs_from_pemder_data(data))
