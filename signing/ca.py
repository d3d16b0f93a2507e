"""The local certificate authority of the embedded default install.

A root CA, an issuing CA, a timestamp authority and their CRLs, kept as named files in a
:class:`~signing.files.FileSource`: a folder, or the application's store shared by every
machine. Private keys are kept encrypted (PKCS#8, AES-256) under the CA passphrase: the one
the application passes in when it has one, otherwise a random one kept beside them in
``passphrase`` — the embedded default trades an operator-held secret for zero setup (what
protects the keys then is who may read that folder); an enterprise brings its own CA and
trust roots instead.

Revocation is required by every validation, so the CA keeps a CRL for each issuer, renewed
when it is older than a day; there is no network service to ask.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from asn1crypto import crl as asn1_crl
from asn1crypto import keys as asn1_keys
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from signing.errors import KeyStoreError
from signing.files import FileSource, as_source
from signing.keys import load_pkcs12_signer, pkcs12_bytes, to_asn1
from signing.timestamps import TimestampAuthority
from signing.trust import TrustSettings

ORGANISATION = "Countersign Local CA"
CRL_RENEW_AFTER = timedelta(days=1)
CRL_VALIDITY = timedelta(days=7)


def _name(common_name: str, unit: str | None = None, email: str | None = None) -> x509.Name:
    parts = [x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
             x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANISATION)]
    if unit:
        parts.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, unit))
    parts.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    if email:
        parts.append(x509.NameAttribute(NameOID.EMAIL_ADDRESS, email))
    return x509.Name(parts)


def _builder(subject: x509.Name, issuer: x509.Name, public_key, years: int):
    now = datetime.now(UTC) - timedelta(minutes=5)
    return (x509.CertificateBuilder()
            .subject_name(subject).issuer_name(issuer).public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + timedelta(days=365 * years))
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), False))


def _key_usage(**flags: bool) -> x509.KeyUsage:
    names = ("digital_signature", "content_commitment", "key_encipherment", "data_encipherment",
             "key_agreement", "key_cert_sign", "crl_sign", "encipher_only", "decipher_only")
    return x509.KeyUsage(**{name: flags.get(name, False) for name in names})


@dataclass(frozen=True)
class IssuedParty:
    """A freshly issued party key and certificate (the key is only ever written encrypted)."""

    key: ec.EllipticCurvePrivateKey | None
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...]


class LocalCA:
    """The CA's files in one FileSource; create with :meth:`create`, open with :meth:`open`."""

    FILES = ("root.crt", "root.key", "issuing.crt", "issuing.key", "tsa.crt", "tsa.key")
    # Written once and never changed again: a reader may keep them for its process's life.
    FIXED = (*FILES, "passphrase", "system.p12")
    # Everything the CA keeps (what a copy of the CA has to take along).
    EVERY = (*FIXED, "root.crl", "issuing.crl", "root.revoked", "issuing.revoked")

    def __init__(self, files: FileSource | Path, passphrase: str) -> None:
        self.files = as_source(files)
        self._passphrase = passphrase.encode()

    # --- creation and opening ------------------------------------------------------------

    @staticmethod
    def passphrase_for(files: FileSource | Path, given: str | None = None) -> str:
        """Return the CA passphrase: ``given``, or the one kept beside the CA."""
        if given:
            return given
        stored = as_source(files).read("passphrase")
        if stored is not None:
            return stored.decode("utf-8").strip()
        raise KeyStoreError("找不到 CA 口令", f"no CA passphrase given and none kept in {files}")

    @classmethod
    def exists(cls, files: FileSource | Path) -> bool:
        source = as_source(files)
        return all(source.read(name) is not None for name in cls.FILES)

    @classmethod
    def open(cls, files: FileSource | Path, passphrase: str | None = None) -> LocalCA:
        """Return the CA in ``files``, its keys under ``passphrase`` (default: the kept one)."""
        if not cls.exists(files):
            raise KeyStoreError(f"{files} 中没有本地 CA，请先运行 countersign init",
                                f"no local CA in {files}: run `countersign init` first")
        return cls(files, cls.passphrase_for(files, passphrase))

    @classmethod
    def create(cls, files: FileSource | Path, passphrase: str | None = None) -> LocalCA:
        """Create root, issuing CA and TSA in ``files`` (which must not hold a CA yet), their
        keys under ``passphrase`` or, without one, under a random one kept beside them."""
        source = as_source(files)
        if not passphrase:
            passphrase = secrets.token_urlsafe(32)
            source.write("passphrase", passphrase.encode())
        ca = cls(source, passphrase)
        root_key = ec.generate_private_key(ec.SECP384R1())
        root_name = _name(f"{ORGANISATION} Root")
        root = (_builder(root_name, root_name, root_key.public_key(), 20)
                .add_extension(x509.BasicConstraints(ca=True, path_length=1), True)
                .add_extension(_key_usage(key_cert_sign=True, crl_sign=True,
                                          digital_signature=True), True)
                .sign(root_key, hashes.SHA384()))
        issuing_key = ec.generate_private_key(ec.SECP256R1())
        issuing = ca._issue(_name(f"{ORGANISATION} Issuing CA"), issuing_key.public_key(),
                            root, root_key, years=10, extensions=[
                                (x509.BasicConstraints(ca=True, path_length=0), True),
                                (_key_usage(key_cert_sign=True, crl_sign=True,
                                            digital_signature=True), True)])
        # RSA: pyHanko's in-process RFC 3161 token builder signs with RSA only.
        tsa_key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
        tsa = ca._issue(_name(f"{ORGANISATION} Timestamp Authority"), tsa_key.public_key(),
                        root, root_key, years=10, extensions=[
                            (_key_usage(digital_signature=True), True),
                            (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), True)])
        for label, cert, key in (("root", root, root_key), ("issuing", issuing, issuing_key),
                                 ("tsa", tsa, tsa_key)):
            source.write(f"{label}.crt", cert.public_bytes(serialization.Encoding.PEM))
            ca._write_key(f"{label}.key", key)
        ca.refresh_crls(force=True)
        return ca

    # --- keys and certificates -----------------------------------------------------------

    def _read(self, name: str) -> bytes:
        data = self.files.read(name)
        if data is None:
            raise KeyStoreError(f"本地 CA 缺少文件 {name}",
                                f"the local CA in {self.files} has no {name}")
        return data

    def _write_key(self, name: str, key) -> None:
        self.files.write(name, key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(self._passphrase)))

    def _key(self, label: str):
        try:
            return serialization.load_pem_private_key(self._read(f"{label}.key"),
                                                      self._passphrase)
        except ValueError:
            raise KeyStoreError("CA 口令错误", "wrong CA passphrase") from None

    def certificate(self, label: str) -> x509.Certificate:
        """Return the ``root``, ``issuing`` or ``tsa`` certificate."""
        return x509.load_pem_x509_certificate(self._read(f"{label}.crt"))

    @property
    def root_sha256(self) -> str:
        """The SHA-256 of the root certificate (PEM as kept): which CA this is."""
        return hashlib.sha256(self._read("root.crt")).hexdigest()

    def check_passphrase(self) -> None:
        """Raise KeyStoreError unless the passphrase opens the CA's keys."""
        for label in ("root", "issuing", "tsa"):
            self._key(label)

    def _issue(self, subject: x509.Name, public_key, issuer_cert: x509.Certificate, issuer_key,
               years: int, extensions) -> x509.Certificate:
        builder = _builder(subject, issuer_cert.subject, public_key, years).add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), False)
        for extension, critical in extensions:
            builder = builder.add_extension(extension, critical)
        return builder.sign(issuer_key, hashes.SHA256())

    def issue_party(self, name: str, dept: str, email: str, years: int = 2,
                    public_key=None) -> IssuedParty:
        """Issue a signing certificate for a party: name and department in the subject,
        key usage digitalSignature + nonRepudiation. With ``public_key`` (a key made on a
        token) no private key is generated and ``key`` is None."""
        key = None if public_key is not None else ec.generate_private_key(ec.SECP256R1())
        issuing = self.certificate("issuing")
        cert = self._issue(_name(name, dept, email), public_key or key.public_key(), issuing,
                           self._key("issuing"), years, extensions=[
                               (x509.BasicConstraints(ca=False, path_length=None), True),
                               (_key_usage(digital_signature=True, content_commitment=True),
                                True),
                               (x509.SubjectAlternativeName([x509.RFC822Name(email)]), False)])
        return IssuedParty(key=key, certificate=cert, chain=(issuing, self.certificate("root")))

    def system_signer(self):
        """Return the system's own signer (for certificates of completion), issuing its key
        into ``system.p12`` under the CA passphrase on first use (once, even when several
        processes ask at the same moment: the first one written is the one kept)."""
        passphrase = self._passphrase.decode()
        data = self.files.read("system.p12")
        if data is None:
            issued = self.issue_party("Countersign 系统", "系统 System", "system@countersign",
                                      years=10)
            data = pkcs12_bytes("countersign-system", issued.key, issued.certificate,
                                list(issued.chain), passphrase)
            if not self.files.create("system.p12", data):
                data = self._read("system.p12")
        return load_pkcs12_signer(data, passphrase)

    # --- revocation ----------------------------------------------------------------------

    def refresh_crls(self, force: bool = False) -> tuple[bytes, bytes]:
        """Write fresh CRLs for the root and the issuing CA when older than a day; return
        both as they are now (DER, root's first)."""
        current = []
        for label, issuer_label in (("root", "root"), ("issuing", "issuing")):
            data = self.files.read(f"{label}.crl")
            if not force and data is not None:
                crl = x509.load_der_x509_crl(data)
                if datetime.now(UTC) - crl.last_update_utc < CRL_RENEW_AFTER:
                    current.append(data)
                    continue
            issuer = self.certificate(issuer_label)
            revoked = self._revoked_serials(label)
            now = datetime.now(UTC) - timedelta(minutes=5)
            builder = (x509.CertificateRevocationListBuilder()
                       .issuer_name(issuer.subject).last_update(now)
                       .next_update(now + CRL_VALIDITY)
                       .add_extension(x509.CRLNumber(int(now.timestamp())), False)
                       .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                           issuer.public_key()), False))
            for serial, when in revoked:
                builder = builder.add_revoked_certificate(
                    x509.RevokedCertificateBuilder().serial_number(serial)
                    .revocation_date(when).build())
            data = builder.sign(self._key(issuer_label), hashes.SHA256()).public_bytes(
                serialization.Encoding.DER)
            self.files.write(f"{label}.crl", data)
            current.append(data)
        return current[0], current[1]

    def _revoked_serials(self, label: str) -> list[tuple[int, datetime]]:
        data = self.files.read(f"{label}.revoked")
        out = []
        for line in (data or b"").decode("utf-8").split():
            serial, _, when = line.partition("@")
            out.append((int(serial), datetime.fromisoformat(when)))
        return out

    def revoke(self, certificate: x509.Certificate) -> None:
        """Put a party certificate on the issuing CA's CRL (effective at once)."""
        existing = (self.files.read("issuing.revoked") or b"").decode("utf-8")
        stamp = datetime.now(UTC).isoformat()
        self.files.write("issuing.revoked",
                         (existing + f"{certificate.serial_number}@{stamp}\n").encode())
        self.refresh_crls(force=True)

    # --- what the signing layer needs ----------------------------------------------------

    def trust(self, crls: tuple[bytes, bytes] | None = None) -> TrustSettings:
        """Return trust settings for documents signed under this CA (offline CRLs:
        ``crls`` as :meth:`refresh_crls` returned them, or refreshed now)."""
        crls = crls or self.refresh_crls()
        return TrustSettings(
            roots=(to_asn1(self.certificate("root")),),
            other_certs=(to_asn1(self.certificate("issuing")), to_asn1(self.certificate("tsa"))),
            crls=tuple(asn1_crl.CertificateList.load(data) for data in crls),
            allow_fetching=False)

    def timestamp_authority(self) -> TimestampAuthority:
        """Return the local TSA (key decrypted in memory only)."""
        key = self._key("tsa")
        der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        return TimestampAuthority(cert=to_asn1(self.certificate("tsa")),
                                  key=asn1_keys.PrivateKeyInfo.load(der),
                                  chain=(to_asn1(self.certificate("root")),))
