"""Parties: the people who sign, each with a department, an e-mail and a signing key.

``init`` creates the demo parties (passphrase ``demo``); ``add`` issues a certificate from the
local CA into a passphrase-protected PKCS#12, or imports one the party already has; either
is kept in the store (``record.keyring``), which every server and worker reads. An upload
is credited to a party only by a certificate registered as its own (its key's, or one an
administrator registered with ``register_certificate``) — never by a name in a subject.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from sqlalchemy.exc import IntegrityError

from pipeline.config import Settings
from pipeline.errors import BadInput, UnknownParty
from pipeline.forms.validate import bad_character
from pipeline.record import database, keyring, security
from pipeline.signing_setup import local_ca
from signing.keys import certificate_sha256, pkcs12_bytes, read_pkcs12_certificate, to_asn1
from signing.trust import load_certificates

DEMO_PASSPHRASE = "demo"
DEMO_PARTIES = (
    ("zhangwei", "张伟", "市场部", "zhangwei@example.com"),
    ("lina", "李娜", "产品部", "lina@example.com"),
    ("wangqiang", "王强", "研发部", "wangqiang@example.com"),
    ("zhaomin", "赵敏", "市场部", "zhaomin@example.com"),
    ("liuyang", "刘洋", "技术部", "liuyang@example.com"),
)
PARTY_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,31}$")
# The HTML standard's "valid e-mail address": no quotes, commas, angle brackets or spaces,
# so an address can never carry a second recipient or a header into a mail.
EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}"
                   r"[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$")


@dataclass(frozen=True)
class Party:
    id: str
    name: str
    dept: str
    email: str
    superior_email: str | None
    certificate_sha256: str | None
    key_file: str | None
    created_at: str

    def summary(self) -> dict[str, object]:
        """Return the ``parties list`` entry."""
        return {k: v for k, v in asdict(self).items() if k != "key_file"}


def _connect(settings: Settings):
    return database.connection(settings.database)


def _check_text(value: str, what_zh: str, what_en: str, limit: int = 50) -> str:
    value = (value or "").strip()
    if not value or len(value) > limit or bad_character(value, allow_newlines=False):
        raise BadInput(f"{what_zh}应为 1 到 {limit} 个字符的单行文本",
                       f"{what_en} must be one line of 1 to {limit} characters")
    return value


def list_parties(settings: Settings) -> list[Party]:
    """Return every party, ordered by id."""
    with _connect(settings) as conn:
        return [Party(**row) for row in database.select_parties(conn)]


def get_party(settings: Settings, party_id: str) -> Party:
    """Return party ``party_id`` or raise UnknownParty."""
    with _connect(settings) as conn:
        row = database.select_party(conn, party_id)
    if row is None:
        raise UnknownParty.named(party_id)
    return Party(**row)


def add_party(settings: Settings, *, name: str, dept: str, email: str,
              party_id: str | None = None, superior_email: str | None = None,
              issue_cert: bool = False, p12: bytes | None = None,
              passphrase: str | None = None) -> Party:
    """Register a party; with ``issue_cert`` the local CA issues its key and certificate into
    a PKCS#12 under ``passphrase``; with ``p12`` an existing PKCS#12 is imported as is."""
    name = _check_text(name, "姓名", "name")
    dept = _check_text(dept, "部门", "department")
    email = (email or "").strip()
    if not EMAIL.match(email):
        raise BadInput(f"电子邮箱格式错误：{email!r}", f"not an e-mail address: {email!r}")
    if superior_email and not EMAIL.match(superior_email):
        raise BadInput(f"上级邮箱格式错误：{superior_email!r}",
                       f"superior's e-mail is not an address: {superior_email!r}")
    party_id = party_id or email.split("@", 1)[0].lower()
    if not PARTY_ID.match(party_id):
        raise BadInput(f"签署方编号 {party_id!r} 只能含小写字母、数字、点、横线",
                       f"party id {party_id!r} may hold only a-z, 0-9, '.', '_' and '-'")
    if issue_cert and p12 is not None:
        raise BadInput("--issue-cert 与 --p12 只能选一个", "give --issue-cert or --p12, not both")
    if (issue_cert or p12 is not None) and not passphrase:
        raise BadInput("需要密钥口令", "a key passphrase is needed")
    fingerprint = key_file = None
    with _connect(settings) as conn:
        if database.select_party(conn, party_id):
            raise BadInput(f"签署方编号 {party_id!r} 已存在", f"party id {party_id!r} exists")
        if issue_cert:
            issued = local_ca(settings).issue_party(name, dept, email)
            p12 = pkcs12_bytes(name, issued.key, issued.certificate, list(issued.chain),
                               passphrase)
            fingerprint = certificate_sha256(to_asn1(issued.certificate))
        elif p12 is not None:
            fingerprint = certificate_sha256(read_pkcs12_certificate(p12, passphrase))
        if fingerprint:
            # Into the store, where every server and worker finds it (keyring).
            key_file = keyring.save_party_key(settings, party_id, p12)
        party = Party(id=party_id, name=name, dept=dept, email=email,
                      superior_email=superior_email or None, certificate_sha256=fingerprint,
                      key_file=key_file, created_at=datetime.now(UTC).isoformat())
        try:
            database.insert_party(conn, asdict(party))
        except IntegrityError:
            if key_file:
                keyring.remove_party_key(settings, key_file)
            raise BadInput(f"邮箱 {email} 已被其他签署方使用",
                           f"e-mail {email} belongs to another party") from None
    return party


def registered_certificates(settings: Settings, party: Party) -> frozenset[str]:
    """Return the fingerprints of every certificate that signs as ``party``: its own key's
    and those an administrator registered for it (e.g. from the enterprise's PKI)."""
    with _connect(settings) as conn:
        extra = security.select_party_certificates(conn, party.id)
    return frozenset(filter(None, (party.certificate_sha256, *extra)))


def register_certificate(settings: Settings, party_id: str, certificate: bytes,
                         label: str = "") -> str:
    """Register a PEM or DER certificate as ``party_id``'s (an upload signed with it is
    credited to the party); return its SHA-256 fingerprint."""
    party = get_party(settings, party_id)
    try:
        certs = load_certificates(certificate)
    except ValueError as exc:
        raise BadInput("证书格式错误", f"not a PEM or DER certificate: {exc}") from None
    if len(certs) != 1:
        raise BadInput("请只提供一张证书", f"give exactly one certificate (found {len(certs)})")
    fingerprint = certificate_sha256(certs[0])
    with _connect(settings) as conn:
        security.insert_party_certificate(conn, party.id, fingerprint,
                                          label or certs[0].subject.human_friendly,
                                          datetime.now(UTC).isoformat())
    return fingerprint
