"""RFC 3161 timestamps: from a configured authority over HTTP, or from the local CA's own TSA.

A configured authority that does not answer is an error: a signature is never made without
its timestamp.
"""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp
from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from pyhanko.sign.timestamps import TimeStamper
from pyhanko.sign.timestamps.aiohttp_client import HTTPTimeStamper
from pyhanko.sign.timestamps.dummy_client import DummyTimeStamper
from pyhanko_certvalidator.registry import SimpleCertificateStore


@dataclass(frozen=True)
class TimestampAuthority:
    """Either ``url`` (an RFC 3161 service) or a local key and certificate."""

    url: str | None = None
    cert: asn1_x509.Certificate | None = None
    key: asn1_keys.PrivateKeyInfo | None = None
    chain: tuple[asn1_x509.Certificate, ...] = ()
    timeout_s: float = 10.0

    def timestamper(self, session: aiohttp.ClientSession | None = None) -> TimeStamper:
        """Return the pyHanko TimeStamper for this authority (HTTP through ``session``)."""
        if self.url:
            if session is None:
                raise ValueError("an HTTP timestamp authority needs a client session")
            return HTTPTimeStamper(self.url, session=session, timeout=self.timeout_s)
        if self.cert is None or self.key is None:
            raise ValueError("a timestamp authority needs a URL or a key and certificate")
        # pyHanko's in-process RFC 3161 token builder, used with the local CA's TSA key.
        store = SimpleCertificateStore.from_certs([self.cert, *self.chain])
        return DummyTimeStamper(tsa_cert=self.cert, tsa_key=self.key, certs_to_embed=store)
