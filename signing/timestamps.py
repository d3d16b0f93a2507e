"""RFC 3161 timestamps: from a configured authority over HTTP, or from the local CA's own TSA;
and the check of a stand-alone timestamp token (an anchor of some digest).

A configured authority that does not answer is an error: a signature is never made without
its timestamp.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime

import aiohttp
from asn1crypto import cms, tsp
from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives import hashes
from pyhanko.sign.general import CMSStructuralError, extract_signer_info
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
            return HTTPTimeStamper(self.url, session=session, timeout=self.timeout_s)
        if self.cert is None or self.key is None:
            raise ValueError("a timestamp authority needs a URL or a key and certificate")
        # pyHanko's in-process RFC 3161 token builder, used with the local CA's TSA key.
        store = SimpleCertificateStore.from_certs([self.cert, *self.chain])
        return DummyTimeStamper(tsa_cert=self.cert, tsa_key=self.key, certs_to_embed=store)


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
