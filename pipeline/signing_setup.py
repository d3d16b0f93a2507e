"""What the signing layer needs for this deployment: trust, timestamp authority, stamp font.

The local CA lives in the store (``record.keyring``), so every server and worker on every
machine opens the same one. It is always trusted (with its offline CRLs);
``COUNTERSIGN_TRUST_ROOTS`` adds an enterprise's own roots, and ``COUNTERSIGN_TSA_URL``
replaces the local TSA. Revocation data
and issuer certificates are fetched from the network only from the URL prefixes of
``COUNTERSIGN_FETCH_ALLOW`` (the enterprise PKI's OCSP and CRL servers): never from a URL
that merely appears in a certificate, since an uploaded PDF's certificates are the
uploader's to write.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipeline.config import Settings
from pipeline.errors import BadInput
from pipeline.record.keyring import open_ca
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
    """A file's modification time, or 0: part of the cache key below."""
    try:
        return path.stat().st_mtime if path else 0.0
    except OSError:
        return 0.0


_TRUST: dict[tuple, TrustSettings] = {}
_TSA: dict[tuple[str, str], TimestampAuthority] = {}


def local_ca(settings: Settings) -> LocalCA:
    """Return the deployment's local CA from the store, opened with its passphrase."""
    return open_ca(settings)


def trust_for(settings: Settings) -> TrustSettings:
    """Return the trust of ``settings``: local CA (with its CRLs) plus configured roots.

    The CRLs are read (and renewed when a day old) on every call, so a revocation made by
    any process is seen at once; what is built from them is kept until they or the roots
    file change: verification is a hot path and must not re-parse the CA for every document.
    """
    ca = local_ca(settings)
    crls = ca.refresh_crls()
    key = (ca.root_sha256, crls, settings.trust_roots_file,
           _version(settings.trust_roots_file), settings)
    found = _TRUST.get(key)
    if found is None:
        local = ca.trust(crls)
        found = TrustSettings(roots=(*local.roots, *configured_roots(settings)),
                              other_certs=local.other_certs, crls=local.crls,
                              allow_fetching=bool(settings.fetch_allow),
                              fetch_allow=settings.fetch_allow)
        if len(_TRUST) >= 16:
            _TRUST.clear()
        _TRUST[key] = found
    return found


def timestamp_authority(settings: Settings) -> TimestampAuthority:
    """Return the deployment's TSA: ``COUNTERSIGN_TSA_URL``, or the local CA's own."""
    if settings.tsa_url:
        return TimestampAuthority(url=settings.tsa_url)
    ca = local_ca(settings)
    key = (ca.root_sha256, settings.ca_passphrase)
    found = _TSA.get(key)
    if found is None:
        # Decrypting the TSA key is deliberately slow (scrypt): once per process and CA.
        found = _TSA[key] = ca.timestamp_authority()
    return found


def signing_environment(settings: Settings) -> SigningEnvironment:
    """Return the trust, TSA and font for ``settings`` (the local CA must exist)."""
    return SigningEnvironment(trust=trust_for(settings), tsa=timestamp_authority(settings),
                              font=stamp_font(settings.fonts_dir))
