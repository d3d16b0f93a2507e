"""Signing with a key that never leaves a PKCS#11 token (SoftHSM2)."""

from __future__ import annotations

import os
import shutil
import subprocess
from datetime import datetime, timedelta, timezone

import pytest
from cryptography.hazmat.primitives import serialization

from pipeline.config import Settings
from pipeline.people.setup import initialise
from pipeline.signing_setup import local_ca
from signing.appearance import Stamp
from signing.errors import KeyStoreError
from signing.fields import find_signature_places, prepare_fields
from signing.fonts import stamp_font
from signing.keys import Pkcs11Key, open_pkcs11_signer, to_asn1
from signing.sign import SignatureRequest, sign_pdf
from signing.validation import validate_pdf
from tests.support.pdf import rendered_pdf

pytestmark = pytest.mark.slow  # a SoftHSM2 token, and LibreOffice for the document
MODULE = "/usr/lib/softhsm/libsofthsm2.so"
PIN = "123456"


def tool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["pkcs11-tool", "--module", MODULE, "--login", "--pin", PIN, *args],
                          capture_output=True, check=True, timeout=60)


@pytest.fixture
def token(tmp_path, monkeypatch):
    assert shutil.which("softhsm2-util"), "softhsm2 is installed by make test"
    (tmp_path / "tokens").mkdir()
    conf = tmp_path / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tmp_path / 'tokens'}\n", encoding="utf-8")
    monkeypatch.setenv("SOFTHSM2_CONF", str(conf))
    subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", "countersign",
                    "--pin", PIN, "--so-pin", "654321"], check=True, capture_output=True)
    return tmp_path


def test_sign_with_a_key_generated_on_the_token(token, pool):
    settings = Settings(data_dir=token / "data")
    initialise(settings)
    ca = local_ca(settings)
    # The key pair is made on the token; only its public half ever leaves it.
    tool("--keypairgen", "--key-type", "EC:prime256v1", "--label", "signer", "--id", "01")
    public_der = tool("--read-object", "--type", "pubkey", "--label", "signer").stdout
    public_key = serialization.load_der_public_key(public_der)
    issued = ca.issue_party("陈静", "法务部", "chenjing@example.com", public_key=public_key)
    assert issued.key is None
    cert_file = token / "cert.der"
    cert_file.write_bytes(issued.certificate.public_bytes(serialization.Encoding.DER))
    tool("--write-object", str(cert_file), "--type", "cert", "--label", "signer", "--id", "01")

    session, signer = open_pkcs11_signer(
        Pkcs11Key(module=MODULE, token_label="countersign", key_label="signer"), PIN,
        chain=(to_asn1(ca.certificate("issuing")),))
    try:
        pdf = rendered_pdf(pool, "requirement_confirmation")
        pdf = prepare_fields(pdf, find_signature_places(pdf))
        stamp = Stamp("陈静", "法务部", "同意", datetime.now(timezone(timedelta(hours=8))))
        signed = sign_pdf(pdf, SignatureRequest("requester", stamp, True), signer,
                          ca.timestamp_authority(), ca.trust(), stamp_font(settings.fonts_dir))
    finally:
        session.close()
    report = validate_pdf(signed, ca.trust())
    assert report.valid, report.as_dict()
    assert report.signatures[0].signer == "陈静 / 法务部"


def test_wrong_pin_is_a_clear_error(token):
    with pytest.raises(KeyStoreError, match="cannot open PKCS#11 token countersign"):
        open_pkcs11_signer(Pkcs11Key(module=MODULE, token_label="countersign",
                                     key_label="signer"), "000000")
    assert os.environ["SOFTHSM2_CONF"].startswith(str(token))
