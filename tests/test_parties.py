"""init, the local CA, parties and their PKCS#12 keys (the embedded default)."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import pkcs12

from pipeline.config import Settings, load_settings
from pipeline.people.parties import DEMO_PARTIES, add_party, list_parties
from pipeline.people.setup import initialise
from pipeline.signing_setup import local_ca
from signing.appearance import Stamp
from signing.ca import LocalCA
from signing.errors import KeyStoreError, WrongPassphrase
from signing.fields import find_signature_places, prepare_fields
from signing.fonts import stamp_font
from signing.keys import load_pkcs12_signer
from signing.ltv import add_long_term_validation
from signing.sign import SignatureRequest, sign_pdf
from signing.validation import validate_pdf
from tests.support.cli import COUNTERSIGN
from tests.support.data import party_p12
from tests.support.pdf import rendered_pdf

CST = timezone(timedelta(hours=8))


def cli(data: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([COUNTERSIGN, "--data-dir", str(data), *args], capture_output=True,
                          text=True, timeout=120, env={**os.environ, **(env or {})},
                          stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def initialised(tmp_path_factory) -> Settings:
    settings = Settings(data_dir=tmp_path_factory.mktemp("data"))
    initialise(settings)
    return settings


def test_init_creates_ca_and_demo_parties_once(tmp_path):
    first = cli(tmp_path / "d", "init", "--json")
    assert first.returncode == 0, first.stderr
    payload = json.loads(first.stdout)
    assert payload["created_ca"] and payload["demo_passphrase"] == "demo"
    assert [p["id"] for p in payload["demo_parties"]] == [p[0] for p in DEMO_PARTIES]
    again = json.loads(cli(tmp_path / "d", "init", "--json").stdout)
    assert not again["created_ca"] and again["demo_parties"] == []
    listed = json.loads(cli(tmp_path / "d", "parties", "list", "--json").stdout)
    assert len(listed) == len(DEMO_PARTIES)
    assert all({"id", "name", "dept", "email"} <= set(p) for p in listed)
    human = cli(tmp_path / "d", "init")
    assert human.returncode == 0


def test_private_keys_are_never_stored_unencrypted(initialised):
    for path in initialised.data_dir.rglob("*"):
        if path.is_file() and path.suffix != ".db":
            data = path.read_bytes()
            assert b"BEGIN PRIVATE KEY" not in data and b"BEGIN EC PRIVATE KEY" not in data
    for label in ("root", "issuing", "tsa"):
        assert local_ca(initialised).files.read(f"{label}.key").startswith(
            b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    p12 = party_p12(initialised, "zhangwei")
    with pytest.raises(ValueError):
        pkcs12.load_key_and_certificates(p12, None)
    key, cert, _ = pkcs12.load_key_and_certificates(p12, b"demo")
    assert cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == "张伟"
    assert key.public_key() == cert.public_key()  # the key that goes with the certificate


def test_an_operator_held_ca_passphrase_is_never_written_down(tmp_path, monkeypatch):
    monkeypatch.setenv("COUNTERSIGN_CA_PASSPHRASE", "operator secret")
    settings = load_settings(tmp_path / "held")
    assert settings.ca_passphrase == "operator secret"
    initialise(settings)
    files = local_ca(settings).files  # the CA's files in the store
    assert files.read("passphrase") is None
    assert not any(p.name == "passphrase" for p in settings.data_dir.rglob("*"))
    assert local_ca(settings).trust().roots  # opened with the configured passphrase
    with pytest.raises(KeyStoreError, match="no CA passphrase"):
        LocalCA.open(files)  # nothing kept beside the keys to fall back on
    wrong = replace(settings, ca_passphrase="guess")
    with pytest.raises(KeyStoreError, match="wrong CA passphrase"):
        local_ca(wrong).timestamp_authority()


def test_issued_certificate_names_the_party(initialised, tmp_path):
    secret = tmp_path / "pass.txt"
    secret.write_text("s3cret\n", encoding="utf-8")
    result = cli(initialised.data_dir, "parties", "add", "--name", "孙丽", "--dept", "财务部",
                 "--email", "sunli@example.com", "--superior", "boss@example.com",
                 "--issue-cert", "--passphrase-file", str(secret), "--json")
    assert result.returncode == 0, result.stderr
    party = json.loads(result.stdout)
    _, cert, _ = pkcs12.load_key_and_certificates(
        party_p12(initialised, "sunli"), b"s3cret")
    assert party["id"] == "sunli"
    assert party["certificate_sha256"] == cert.fingerprint(hashes.SHA256()).hex()
    subject = {a.oid._name: a.value for a in cert.subject}
    assert subject["commonName"] == "孙丽" and subject["organizationalUnitName"] == "财务部"
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and usage.content_commitment  # nonRepudiation
    assert not usage.key_cert_sign


def test_import_existing_pkcs12(initialised, tmp_path):
    copy = tmp_path / "mine.p12"
    copy.write_bytes(party_p12(initialised, "lina"))
    result = cli(initialised.data_dir, "parties", "add", "--name", "李娜", "--dept", "产品部",
                 "--email", "lina.second@example.com", "--id", "lina2", "--p12", str(copy),
                 "--json", env={"COUNTERSIGN_PASSPHRASE": "demo"})
    assert result.returncode == 0, result.stderr
    parties = {p.id: p for p in list_parties(initialised)}
    assert parties["lina2"].certificate_sha256 == parties["lina"].certificate_sha256
    wrong = cli(initialised.data_dir, "parties", "add", "--name", "x", "--dept", "y",
                "--email", "x3@example.com", "--p12", str(copy),
                env={"COUNTERSIGN_PASSPHRASE": "nope"})
    assert wrong.returncode == 2 and "wrong key passphrase" in wrong.stderr


@pytest.mark.parametrize("args, message", [
    (["--name", "a", "--dept", "b", "--email", "not-an-email"], "not an e-mail address"),
    (["--name", "", "--dept", "b", "--email", "e@example.com"], "name must be one line"),
    (["--name", "a", "--dept", "b", "--email", "zhangwei@example.com"], "exists"),
    (["--name", "a", "--dept", "b", "--email", "q@example.com", "--id", "Bad Id"],
     "may hold only"),
    (["--name", "a", "--dept", "b", "--email", "k@example.com", "--issue-cert"],
     "passphrase is needed"),
])
def test_bad_party_input_is_one_line_exit_2(initialised, args, message):
    result = cli(initialised.data_dir, "parties", "add", *args,
                 env={"COUNTERSIGN_PASSPHRASE": ""})
    assert result.returncode == 2, result.stdout
    assert message in result.stderr and result.stderr.strip().count("\n") == 0


def test_wrong_passphrase_is_refused(initialised):
    with pytest.raises(WrongPassphrase):
        load_pkcs12_signer(party_p12(initialised, "zhangwei"), "guess")


@pytest.mark.slow
def test_local_ca_signs_validates_offline_and_revokes(initialised, pool, tmp_path):
    ca = local_ca(initialised)
    trust, tsa = ca.trust(), ca.timestamp_authority()
    font = stamp_font(initialised.fonts_dir)
    pdf = rendered_pdf(pool, "issue_tracking")
    pdf = prepare_fields(pdf, find_signature_places(pdf))
    for index, (field, party) in enumerate((("responsible", "wangqiang"),
                                            ("reporter", "liuyang"))):
        signer = load_pkcs12_signer(party_p12(initialised, party), "demo")
        pdf = sign_pdf(pdf, SignatureRequest(field, Stamp("王强", "研发部", "确认 / Confirmed",
                                                          datetime.now(CST)), index == 0),
                       signer, tsa, trust, font)
    assert validate_pdf(pdf, trust).valid
    closed = add_long_term_validation(pdf, trust, tsa)
    assert validate_pdf(closed, trust.offline(), offline=True).valid
    issued = add_party(initialised, name="周杰", dept="研发部", email="zhoujie@example.com",
                       issue_cert=True, passphrase="pw")
    signer = load_pkcs12_signer(party_p12(initialised, issued.id), "pw")
    fresh = rendered_pdf(pool, "issue_tracking")
    fresh = prepare_fields(fresh, find_signature_places(fresh))
    signed = sign_pdf(fresh, SignatureRequest("responsible", Stamp("周杰", "研发部", "同意",
                                                                   datetime.now(CST)), True),
                      signer, tsa, trust, font)
    from cryptography.x509 import load_der_x509_certificate

    ca.revoke(load_der_x509_certificate(signer.signing_cert.dump()))
    report = validate_pdf(signed, ca.trust())
    assert not report.valid
    assert any("revoked" in p for p in report.signatures[0].problems)


@pytest.mark.slow
@pytest.mark.parametrize("key", ["requirement_confirmation", "progress_sync", "issue_tracking",
                                 "meeting_minutes"])
def test_every_role_member_of_every_template_signs(initialised, pool, key):
    """Each prepared field is signed in role order by a demo party; all stay valid."""
    ca = local_ca(initialised)
    trust, tsa = ca.trust(), ca.timestamp_authority()
    font = stamp_font(initialised.fonts_dir)
    pdf = rendered_pdf(pool, key)
    places = find_signature_places(pdf)
    pdf = prepare_fields(pdf, places)
    for index, place in enumerate(places):
        party_id, name, dept, _ = DEMO_PARTIES[index % len(DEMO_PARTIES)]
        signer = load_pkcs12_signer(party_p12(initialised, party_id), "demo")
        pdf = sign_pdf(pdf, SignatureRequest(place.field, Stamp(name, dept, "同意",
                                                                datetime.now(CST)), index == 0),
                       signer, tsa, trust, font)
    report = validate_pdf(pdf, trust)
    assert report.valid, report.as_dict()
    assert [s.field for s in report.signatures] == [p.field for p in places]
