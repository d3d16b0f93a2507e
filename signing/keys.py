"""Key sources: passphrase-protected PKCS#12 (the default) and PKCS#11 tokens.

Private keys are never kept unencrypted: a PKCS#12 is made under the party's passphrase
(the application keeps the bytes wherever it keeps keys), and a PKCS#11 key never leaves
its token.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from pyhanko.sign.signers import SimpleSigner
from pyhanko.sign.signers.pdf_cms import Signer

from signing.errors import KeyStoreError, WrongPassphrase
from signing.files import write_atomic


def certificate_sha256(cert: asn1_x509.Certificate) -> str:
    """Return the SHA-256 fingerprint of ``cert`` as lowercase hex."""
    return cert.sha256.hex()


def to_asn1(cert: x509.Certificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))


def pkcs12_bytes(name: str, key, cert: x509.Certificate, chain: list[x509.Certificate],
                 passphrase: str) -> bytes:
    """Return key, certificate and chain as a PKCS#12 encrypted with ``passphrase``
    (PBES2, AES-256-CBC, SHA-256 MAC): the only form a private key is ever kept in."""
    if not passphrase:
        raise KeyStoreError("口令不能为空", "the passphrase must not be empty")
    encryption = (serialization.PrivateFormat.PKCS12.encryption_builder()
                  .kdf_rounds(50000)
                  .key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC)
                  .hmac_hash(hashes.SHA256())
                  .build(passphrase.encode()))
    return pkcs12.serialize_key_and_certificates(name.encode(), key, cert, chain, encryption)


def write_pkcs12(path: Path, name: str, key, cert: x509.Certificate,
                 chain: list[x509.Certificate], passphrase: str) -> Path:
    """Write key, certificate and chain to ``path`` encrypted with ``passphrase``."""
    return write_atomic(path, pkcs12_bytes(name, key, cert, chain, passphrase))


def load_pkcs12_signer(data: bytes, passphrase: str,
                       other_certs: list[asn1_x509.Certificate] | None = None) -> SimpleSigner:
    """Return a signer from PKCS#12 ``data``; WrongPassphrase when it does not open."""
    try:
        return SimpleSigner.load_pkcs12_data(data, other_certs or [], passphrase.encode())
    except ValueError:
        raise WrongPassphrase("密钥口令错误或 PKCS#12 文件已损坏",
                              "wrong key passphrase, or the PKCS#12 file is damaged") from None


def read_pkcs12_certificate(data: bytes, passphrase: str) -> asn1_x509.Certificate:
    """Return the certificate in PKCS#12 ``data`` (opening it with ``passphrase``)."""
    return load_pkcs12_signer(data, passphrase).signing_cert


@dataclass(frozen=True)
class Pkcs11Key:
    """Where a key lives on a PKCS#11 token."""

    module: str
    token_label: str
    key_label: str
    cert_label: str | None = None
    # Hash on the host and let the token do the raw signature: many tokens (SoftHSM2 among
    # them) offer CKM_ECDSA but not the combined CKM_ECDSA_SHA256.
    raw_mechanism: bool = True


def open_pkcs11_signer(spec: Pkcs11Key, pin: str,
                       chain: tuple[asn1_x509.Certificate, ...] = ()):
    """Open a session on the token and return (session, signer); close the session after."""
    from pyhanko.config.pkcs11 import TokenCriteria
    from pyhanko.sign import pkcs11 as pyhanko_pkcs11

    try:
        session = pyhanko_pkcs11.open_pkcs11_session(
            spec.module, token_criteria=TokenCriteria(label=spec.token_label), user_pin=pin)
    except Exception as exc:  # noqa: BLE001 - python-pkcs11 raises many unrelated types
        raise KeyStoreError(f"无法打开 PKCS#11 令牌 {spec.token_label}：{exc}",
                            f"cannot open PKCS#11 token {spec.token_label}: "
                            f"{type(exc).__name__} {exc}") from None
    signer: Signer = pyhanko_pkcs11.PKCS11Signer(
        session, key_label=spec.key_label, cert_label=spec.cert_label or spec.key_label,
        ca_chain=list(chain), use_raw_mechanism=spec.raw_mechanism)
    return session, signer
