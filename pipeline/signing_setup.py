"""What the signing layer needs for this deployment: trust, timestamp authority, stamp font.

The local CA is always trusted (with its offline CRLs); ``COUNTERSIGN_TRUST_ROOTS`` adds an
enterprise's own roots, and ``COUNTERSIGN_TSA_URL`` replaces the local TSA. Revocation data
and issuer certificates are fetched from the network only from the URL prefixes of
``COUNTERSIGN_FETCH_ALLOW`` (the enterprise PKI's OCSP and CRL servers): never from a URL
that merely appears in a certificate, since an uploaded PDF's certificates are the
uploader's to write.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
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


def _version(path: Path | None) -> float:
    """A file's modification time, or 0: part of the cache keys below."""
    try:
        return path.stat().st_mtime if path else 0.0
    except OSError:
        return 0.0


@lru_cache(maxsize=16)
def _trust(ca_dir: Path, roots_file: Path | None, crl_versions: tuple[float, ...],
           roots_version: float, settings: Settings) -> TrustSettings:
    local = LocalCA.open(ca_dir, settings.ca_passphrase or None).trust()
    extra = configured_roots(settings)
    return TrustSettings(roots=(*local.roots, *extra), other_certs=local.other_certs,
                         crls=local.crls, allow_fetching=bool(settings.fetch_allow),
                         fetch_allow=settings.fetch_allow)


def local_ca(settings: Settings) -> LocalCA:
    """Return the deployment's local CA, opened with its configured passphrase."""
    return LocalCA.open(settings.ca_dir, settings.ca_passphrase or None)


def trust_for(settings: Settings) -> TrustSettings:
    """Return the trust of ``settings``: local CA (with its CRLs) plus configured roots.

    Cached until a CRL or the roots file changes: verification is a hot path and must not
    re-read and re-parse the CA for every document.
    """
    local_ca(settings).refresh_crls()
    crls = tuple(_version(settings.ca_dir / f"{label}.crl") for label in ("root", "issuing"))
    return _trust(settings.ca_dir, settings.trust_roots_file, crls,
                  _version(settings.trust_roots_file), settings)


@lru_cache(maxsize=16)
def _local_tsa(ca_dir: Path, passphrase_version: float, passphrase: str) -> TimestampAuthority:
    # Decrypting the TSA key is deliberately slow (scrypt): do it once per process.
    return LocalCA.open(ca_dir, passphrase or None).timestamp_authority()


def timestamp_authority(settings: Settings) -> TimestampAuthority:
    """Return the deployment's TSA: ``COUNTERSIGN_TSA_URL``, or the local CA's own."""
    if settings.tsa_url:
        return TimestampAuthority(url=settings.tsa_url)
    return _local_tsa(settings.ca_dir, _version(settings.ca_dir / "tsa.key"),
                      settings.ca_passphrase)


def signing_environment(settings: Settings) -> SigningEnvironment:
    """Return the trust, TSA and font for ``settings`` (the local CA must exist)."""
    return SigningEnvironment(trust=trust_for(settings), tsa=timestamp_authority(settings),
                              font=stamp_font(settings.fonts_dir))
