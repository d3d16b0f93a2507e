"""RFC 3161 timestamps: from a configured authority over HTTP, or from the local CA's own TSA;
and the check of a stand-alone timestamp token (an anchor of some digest).

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
from asn1crypto import cms, core, tsp
from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from pyhanko.sign import general
from pyhanko.sign.general import CMSStructuralError, extract_signer_info, simple_cms_attribute
from pyhanko.sign.timestamps import TimeStamper
from pyhanko.sign.timestamps.aiohttp_client import HTTPTimeStamper
from pyhanko.sign.timestamps.common_utils import TimestampRequestError
from pyhanko.sign.timestamps.dummy_client import DummyTimeStamper
from pyhanko.sign.validation.errors import SignatureValidationError
from pyhanko.sign.validation.generic_cms import (
    extract_certs_for_validation,
    validate_sig_integrity,
    validate_tst_signed_data,
)
from pyhanko.sign.validation.status import TimestampSignatureStatus
from pyhanko_certvalidator.registry import SimpleCertificateStore
from pyhanko_certvalidator.util import get_pyca_cryptography_hash

from signing.errors import TimestampUnavailable
from signing.trust import TrustSettings, validation_context


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


async def async_timestamp_digest(tsa: TimestampAuthority, digest: bytes) -> bytes:
    """Return the DER RFC 3161 token (a CMS ContentInfo) ``tsa`` issues over the SHA-256
    ``digest``; TimestampUnavailable if the authority does not answer."""
    try:
        async with aiohttp.ClientSession() as session:
            token = await tsa.timestamper(session).async_timestamp(digest, "sha256")
    except (TimeoutError, TimestampRequestError, aiohttp.ClientError, ConnectionError) as exc:
        raise TimestampUnavailable(
            f"时间戳服务不可用（{tsa.url or '本地'}）",
            f"the timestamp authority {tsa.url or '(local)'} is unavailable "
            f"({type(exc).__name__}: {exc})") from None
    return token.dump()


def timestamp_digest(tsa: TimestampAuthority, digest: bytes) -> bytes:
    """Synchronous :func:`async_timestamp_digest`."""
    return asyncio.run(async_timestamp_digest(tsa, digest))


@dataclass(frozen=True)
class TokenCheck:
    """The verdict on one RFC 3161 token presented as proof that ``digest`` existed.

    ``authentic``: its CMS signature verifies over its content; ``trusted``: the signer
    chains to a trusted root and may stamp time (timeStamping usage); ``matches``: its
    message imprint is the SHA-256 digest it is checked against.
    """

    readable: bool
    authentic: bool = False
    trusted: bool = False
    matches: bool = False
    time: datetime | None = None
    tsa: str = ""
    problems: tuple[str, ...] = ()

    @property
    def valid(self) -> bool:
        return self.readable and self.authentic and self.trusted and self.matches


def _token_content(token: bytes) -> tuple[cms.SignedData, tsp.TSTInfo]:
    info = cms.ContentInfo.load(token)
    if info["content_type"].native != "signed_data":
        raise ValueError("not CMS SignedData")
    signed = info["content"]
    tst = signed["encap_content_info"]["content"].parsed
    if not isinstance(tst, tsp.TSTInfo):
        raise ValueError("no TSTInfo inside")
    _ = tst.native  # parse everything now: a malformed field fails here, not later
    return signed, tst


class TokenChecker:
    """Checks timestamp tokens against one trust. Whether a TSA certificate is trusted does
    not depend on the token, so each certificate's chain (and revocation) is validated once
    per checker; every token's own signature is still verified."""

    def __init__(self, trust: TrustSettings) -> None:
        self.context = validation_context(trust)
        self._trusted: dict[bytes, bool] = {}

    async def check(self, token: bytes, digest: bytes) -> TokenCheck:
        """Check ``token``: readable, authentic, from a trusted TSA, over ``digest``."""
        try:
            signed, tst = _token_content(token)
            cert = extract_certs_for_validation(signed).signer_cert
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            return TokenCheck(readable=False, problems=(
                f"不是 RFC 3161 时间戳令牌 / not an RFC 3161 timestamp token ({exc})",))
        imprint = tst["message_imprint"]
        matches = (imprint["hash_algorithm"]["algorithm"].native == "sha256"
                   and imprint["hashed_message"].native == digest)
        moment = tst["gen_time"].native
        try:
            authentic, trusted = await self._authentic_and_trusted(signed, cert, imprint)
        except (SignatureValidationError, CMSStructuralError, ValueError, TypeError,
                KeyError) as exc:
            return TokenCheck(readable=True, matches=matches, time=moment, problems=(
                f"时间戳令牌签名无法验证 / the token's signature cannot be checked: {exc}",))
        problems = []
        if not authentic:
            problems.append("时间戳令牌签名无效（伪造或被改动）/ the token's signature does not "
                            "verify: it was forged or altered")
        elif not trusted:
            problems.append(f"时间戳机构不受信任 / the token is signed by an untrusted timestamp "
                            f"authority ({cert.subject.human_friendly}, certificate SHA-256 "
                            f"{cert.sha256.hex()[:16]}…)")
        if not matches:
            problems.append("时间戳令牌的消息摘要不符 / the token's message imprint is not the "
                            "expected digest")
        return TokenCheck(readable=True, authentic=authentic, trusted=trusted,
                          matches=matches, time=moment, tsa=cert.subject.human_friendly,
                          problems=tuple(problems))

    async def _authentic_and_trusted(self, signed: cms.SignedData, cert: asn1_x509.Certificate,
                                     imprint: tsp.MessageImprint) -> tuple[bool, bool]:
        known = self._trusted.get(cert.sha256)
        if known is None:
            # The imprint is compared by the caller, not by pyHanko: a token over other data
            # is then a mismatch, kept apart from a token whose signature does not verify.
            status = TimestampSignatureStatus(**await validate_tst_signed_data(
                signed, self.context, lambda _: imprint["hashed_message"].native))
            authentic = status.intact and status.valid
            if authentic:
                self._trusted[cert.sha256] = status.trusted
            return authentic, status.trusted
        signer_info = extract_signer_info(signed)
        algorithm = signer_info["digest_algorithm"]["algorithm"].native
        content = hashes.Hash(get_pyca_cryptography_hash(algorithm))
        content.update(bytes(signed["encap_content_info"]["content"]))
        intact, valid = validate_sig_integrity(signer_info, cert, expected_content_type="tst_info",
                                               actual_digest=content.finalize())
        return intact and valid, known


def check_timestamp_tokens(items: list[tuple[bytes, bytes]], trust: TrustSettings
                           ) -> list[TokenCheck]:
    """Return the verdict on each (token, expected SHA-256 digest) pair, in order."""
    async def run() -> list[TokenCheck]:
        checker = TokenChecker(trust)
        return [await checker.check(token, digest) for token, digest in items]

    return asyncio.run(run())


def check_timestamp_token(token: bytes, digest: bytes, trust: TrustSettings) -> TokenCheck:
    """Return the verdict on ``token`` as proof that the SHA-256 ``digest`` existed."""
    return check_timestamp_tokens([(token, digest)], trust)[0]
