"""What the signing layer needs for this deployment: trust, timestamp authority, stamp font.

The local CA is always trusted (with its offline CRLs); ``COUNTERSIGN_TRUST_ROOTS`` adds an
enterprise's own roots (then revocation data may be fetched from the network, as its
certificates name it), and ``COUNTERSIGN_TSA_URL`` replaces the local TSA.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipeline.config import Settings
from pipeline.errors import BadInput
from signing.ca import LocalCA
from signing.fonts import stamp_font
from signing.timestamps import TimestampAuthority
from signing.trust import TrustSettings, load_certificates


@dataclass(frozen=True)
class SigningEnvironment:
    trust: TrustSettings
    tsa: TimestampAuthority
    font: Path


def configured_roots(settings: Settings) -> list:
    """Return the extra trust roots of ``settings`` (empty when none are configured)."""
    if settings.trust_roots_file is None:
        return []
    try:
        certs = load_certificates(settings.trust_roots_file.read_bytes())
    except OSError as exc:
        raise BadInput(f"无法读取信任根文件 {settings.trust_roots_file}",
                       f"cannot read trust roots {settings.trust_roots_file}: {exc.strerror}"
                       ) from None
    except ValueError as exc:
        raise BadInput(f"信任根文件格式错误：{exc}",
                       f"trust roots file is not PEM/DER certificates: {exc}") from None
    if not certs:
        raise BadInput("信任根文件中没有证书", "the trust roots file holds no certificate")
    return certs


def signing_environment(settings: Settings) -> SigningEnvironment:
    """Return the trust, TSA and font for ``settings`` (the local CA must exist)."""
    ca = LocalCA.open(settings.ca_dir)
    local = ca.trust()
    extra = configured_roots(settings)
    trust = TrustSettings(roots=(*local.roots, *extra), other_certs=local.other_certs,
                          crls=local.crls, allow_fetching=bool(extra))
    tsa = (TimestampAuthority(url=settings.tsa_url) if settings.tsa_url
           else ca.timestamp_authority())
    return SigningEnvironment(trust=trust, tsa=tsa, font=stamp_font(settings.fonts_dir))
