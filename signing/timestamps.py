"""RFC 3161 timestamps: from a configured authority over HTTP, or from the local CA's own TSA.

A configured authority that does not answer is an error: a signature is never made without
its timestamp.

Timestampers are kept, not rebuilt per signature: pyHanko sizes a signature by first making
a dummy one, timestamp included, and a kept timestamper answers that from its cache; the local
TSA's RSA key is loaded (and checked, ~50 ms for 3072 bits) once instead of per token.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import ClassVar

import aiohttp
from asn1crypto import cms, core
from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from pyhanko.sign import general
from pyhanko.sign.general import get_pyca_cryptography_hash, simple_cms_attribute
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
            return _KeptDummyHTTPTimeStamper(self.url, session=session, timeout=self.timeout_s)
        if self.cert is None or self.key is None:
            raise ValueError("a timestamp authority needs a URL or a key and certificate")
        return _local_timestamper(self.cert.dump(), self.key.dump(),
                                  tuple(cert.dump() for cert in self.chain))

    def prepare(self) -> None:
        """Do now what the first signature would: load the local key and make the token
        used to size signatures. An HTTP authority is not asked before it is needed."""
        if not self.url:
            asyncio.run(self.timestamper().async_dummy_response("sha256"))


class _KeptDummyHTTPTimeStamper(HTTPTimeStamper):
    """An HTTP timestamper (bound to one client session) whose size-estimation token is
    shared by every later one for the same URL: one request per signature, not two."""

    _dummies: ClassVar[dict[tuple[str, str], cms.ContentInfo]] = {}

    async def async_dummy_response(self, md_algorithm) -> cms.ContentInfo:
        key = (self.url, md_algorithm)
        dummy = self._dummies.get(key)
        if dummy is None:
            dummy = await super().async_dummy_response(md_algorithm)
            self._dummies[key] = dummy
        else:
            self._register_dummy(md_algorithm, dummy)
        return dummy


class _LocalTimeStamper(DummyTimeStamper):
    """pyHanko's in-process RFC 3161 token builder, with the TSA key loaded once."""

    def __init__(self, cert: asn1_x509.Certificate, key: asn1_keys.PrivateKeyInfo,
                 chain: tuple[asn1_x509.Certificate, ...]) -> None:
        store = SimpleCertificateStore.from_certs([cert, *chain])
        super().__init__(tsa_cert=cert, tsa_key=key, certs_to_embed=store)
        # The key was checked when the CA's key file was decrypted; checking a 3072-bit RSA
        # key again costs ~50 ms.
        loaded = serialization.load_der_private_key(key.dump(), password=None,
                                                    unsafe_skip_rsa_key_validation=True)
        if not isinstance(loaded, RSAPrivateKey):
            raise ValueError("the local timestamp authority signs with RSA only")
        self._private_key = loaded

    def _sign_tst_info(self, tst_info_data: bytes, md_algorithm: str, dt: datetime
                       ) -> tuple[bytes, cms.CMSAttributes]:
        # pyHanko's own implementation, minus re-loading the key for every token.
        digest = hashes.Hash(get_pyca_cryptography_hash(md_algorithm))
        digest.update(tst_info_data)
        signed_attrs = cms.CMSAttributes([
            simple_cms_attribute("content_type", "tst_info"),
            simple_cms_attribute("signing_time", cms.Time({"utc_time": core.UTCTime(dt)})),
            simple_cms_attribute("signing_certificate",
                                 general.as_signing_certificate(self.tsa_cert)),
            simple_cms_attribute("message_digest", digest.finalize()),
        ])
        signature = self._private_key.sign(
            signed_attrs.dump(), PKCS1v15(), get_pyca_cryptography_hash(md_algorithm.upper()))
        return signature, signed_attrs


@lru_cache(maxsize=8)
def _local_timestamper(cert: bytes, key: bytes, chain: tuple[bytes, ...]) -> _LocalTimeStamper:
    return _LocalTimeStamper(asn1_x509.Certificate.load(cert),
                             asn1_keys.PrivateKeyInfo.load(key),
                             tuple(asn1_x509.Certificate.load(der) for der in chain))
