"""Keys in the store: the parties' PKCS#12s and the local CA live under ``keys/`` of the store
(a shared folder, ``file://``, or S3 on a real S3 API), so a second machine with an empty data
folder — sharing only the database and the store — signs with keys made on the first and
timestamps with the same TSA, and its ``init`` finds the CA instead of making another.
Every key object is encrypted, none is under Object Lock, and an older data folder (CA in
``data/ca``, keys in ``data/keys``) is moved into the store and keeps working."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from pyhanko.pdf_utils.reader import PdfFileReader

from pipeline.config import Settings
from pipeline.documents.repository import download_revision
from pipeline.documents.sign import sign_document
from pipeline.people.parties import DEMO_PARTIES, add_party, get_party
from pipeline.people.setup import initialise
from pipeline.record import keyring
from pipeline.record.backends import open_store
from pipeline.record.store import FilesystemStore, StoreMisconfigured
from pipeline.signing_setup import local_ca, trust_for
from signing.ca import LocalCA
from signing.errors import KeyStoreError
from signing.validation import validate_pdf
from tests.support.cli import COUNTERSIGN
from tests.support.data import party_p12
from tests.support.documents import quick_document
from tests.support.s3 import CA_PASSPHRASE, cli_environment, s3_client, s3_settings

STORES = ["filesystem", pytest.param("s3", marks=pytest.mark.slow)]


def first_machine(kind: str, tmp_path: Path, request) -> Settings:
    """Return the first machine's settings: its own data folder, and a store shared with
    the others — a folder every machine mounts, or an S3 bucket."""
    data_dir = tmp_path / "first" / "data"
    if kind == "filesystem":
        return Settings(data_dir=data_dir, store_url=f"file://{tmp_path / 'shared-store'}",
                        ca_passphrase=CA_PASSPHRASE)
    return s3_settings(data_dir, request.getfixturevalue("s3_endpoint"))


def other_machine(first: Settings, data_dir: Path) -> Settings:
    """Return a machine with an empty data folder of its own that shares ``first``'s store
    and database (the first one's SQLite file, as it would share a PostgreSQL)."""
    return replace(first, data_dir=data_dir,
                   database_url=first.database_url or f"sqlite:///{first.database_path}")


def key_objects(settings: Settings) -> dict[str, bytes]:
    """Return every object under the store's ``keys/``, read the way an outsider with access
    to the store would (not through the application), by name."""
    store = open_store(settings)
    if isinstance(store, FilesystemStore):
        return {p.relative_to(store.keys_root).as_posix(): p.read_bytes()
                for p in store.keys_root.rglob("*") if p.is_file()}
    client = s3_client(settings.s3_endpoint)
    listed = client.list_objects_v2(Bucket=store.bucket, Prefix=f"{store.prefix}keys/")
    return {o["Key"].removeprefix(f"{store.prefix}keys/"):
            client.get_object(Bucket=store.bucket, Key=o["Key"])["Body"].read()
            for o in listed.get("Contents", ())}


def assert_not_a_plain_key(name: str, data: bytes) -> None:
    """Fail if ``data`` opens as a private key without a passphrase."""
    for load in (lambda: serialization.load_pem_private_key(data, None),
                 lambda: serialization.load_der_private_key(data, None),
                 lambda: pkcs12.load_key_and_certificates(data, None)):
        with pytest.raises((TypeError, ValueError, UnsupportedAlgorithm)):
            load()
    assert b"PRIVATE KEY-----" not in data or b"ENCRYPTED PRIVATE KEY-----" in data, name


def timestamp_certificates(pdf: bytes) -> set[bytes]:
    """Return the DER of every certificate carried by the first signature's timestamp."""
    import io

    signature = PdfFileReader(io.BytesIO(pdf)).embedded_signatures[0]
    token = next(a["values"][0] for a in signature.signer_info["unsigned_attrs"]
                 if a["type"].native == "signature_time_stamp_token")
    return {c.chosen.dump() for c in token["content"]["certificates"]}


@pytest.mark.parametrize("kind", STORES)
def test_a_second_machine_signs_with_keys_made_on_the_first(kind, tmp_path, request):
    first = first_machine(kind, tmp_path, request)
    assert initialise(first).created_ca
    sunli = add_party(first, name="孙丽", dept="财务部", email="sunli@example.com",
                      issue_cert=True, passphrase="pw")
    doc = quick_document(first, party="sunli")

    second = other_machine(first, tmp_path / "second" / "data")
    again = initialise(second)
    assert not again.created_ca and again.demo_parties == ()  # the first one's CA and parties
    assert local_ca(second).certificate("root") == local_ca(first).certificate("root")
    status = sign_document(second, doc, "sunli", "pw")
    assert [(s.party, s.certificate_sha256) for s in status.signed] == [
        ("sunli", sunli.certificate_sha256)]
    pdf = download_revision(second, doc)
    report = validate_pdf(pdf, trust_for(first))  # the first machine's CA and CRLs
    assert report.valid and report.signatures[0].timestamp, report.as_dict()
    tsa = local_ca(first).certificate("tsa").public_bytes(serialization.Encoding.DER)
    assert tsa in timestamp_certificates(pdf)  # timestamped by the store's TSA
    # One system key for certificates of completion, whichever machine asks first.
    assert (local_ca(second).system_signer().signing_cert.dump()
            == local_ca(first).system_signer().signing_cert.dump())
    # No key material on either machine's own disk: it is all in the shared store.
    for machine in (first, second):
        found = [p.name for p in machine.data_dir.rglob("*") if p.is_file()
                 and (p.suffix in (".p12", ".key", ".crt") or p.name == "passphrase")]
        assert found == [], found


@pytest.mark.parametrize("kind", STORES)
def test_key_objects_are_encrypted_and_never_locked(kind, tmp_path, request):
    settings = first_machine(kind, tmp_path, request)
    initialise(settings)
    party = add_party(settings, name="孙丽", dept="财务部", email="sunli@example.com",
                      issue_cert=True, passphrase="pw")
    objects = key_objects(settings)
    generation = objects.pop("ca/current").decode()
    ca_files = {n.removeprefix(f"ca/{generation}/") for n in objects if n.startswith("ca/")}
    # Only the generation that is current: no stray half-made CA, no passphrase beside it.
    assert ca_files == {"root.crt", "root.key", "issuing.crt", "issuing.key", "tsa.crt",
                        "tsa.key", "root.crl", "issuing.crl"}
    parties = {n for n in objects if not n.startswith("ca/")}
    assert parties == {get_party(settings, p).key_file.removeprefix("keys/")
                       for p in [*(d[0] for d in DEMO_PARTIES), party.id]}
    for name, data in objects.items():
        assert_not_a_plain_key(name, data)
        if name.endswith(".key"):
            assert data.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
            serialization.load_pem_private_key(data, CA_PASSPHRASE.encode())
        elif name.endswith(".p12"):
            passphrase = b"pw" if name.startswith(f"{party.id}-") else b"demo"
            key, cert, _ = pkcs12.load_key_and_certificates(data, passphrase)
            assert key.public_key() == cert.public_key()
    store = open_store(settings)
    if kind == "s3":
        client = s3_client(settings.s3_endpoint)
        for name in objects:
            head = client.head_object(Bucket=store.bucket, Key=f"{store.prefix}keys/{name}")
            assert "ObjectLockMode" not in head and "ObjectLockLegalHoldStatus" not in head
        with pytest.raises(StoreMisconfigured, match="'keys'"):
            store.archived("keys")  # the archive listing never lists keys
    # A key can be removed for good (a locked object could not: moto refuses that).
    keyring.remove_party_key(settings, party.key_file)
    assert party.key_file.removeprefix("keys/") not in key_objects(settings)
    if kind == "s3":
        versions = s3_client(settings.s3_endpoint).list_object_versions(
            Bucket=store.bucket, Prefix=f"{store.prefix}{party.key_file}")
        assert not versions.get("Versions") and not versions.get("DeleteMarkers")


def make_older(settings: Settings) -> None:
    """Turn an initialised embedded data folder into the layout older versions wrote: the
    CA in ``data/ca``, each party's key in ``data/keys/<id>.p12``, the table naming it so."""
    in_store = settings.keys_dir / "ca"
    generation = (in_store / "current").read_text(encoding="utf-8").strip()
    shutil.move(in_store / generation, settings.ca_dir)
    shutil.rmtree(in_store)
    with sqlite3.connect(settings.database_path) as conn:
        for party_id, key_file in conn.execute(
                "SELECT id, key_file FROM parties WHERE key_file IS NOT NULL").fetchall():
            (settings.data_dir / key_file).rename(settings.keys_dir / f"{party_id}.p12")
            conn.execute("UPDATE parties SET key_file = ? WHERE id = ?",
                         (f"keys/{party_id}.p12", party_id))


def test_an_older_data_folder_keeps_signing_and_its_ca_moves_into_the_store(tmp_path):
    settings = Settings(data_dir=tmp_path / "data")  # the embedded default
    initialise(settings)
    make_older(settings)
    root = (settings.ca_dir / "root.crt").read_bytes()
    doc = quick_document(settings, party="lina")
    status = sign_document(settings, doc, "lina", "demo")  # the first use moves the CA
    assert [s.party for s in status.signed] == ["lina"]
    assert not settings.ca_dir.exists()
    assert (settings.data_dir / keyring.RETIRED_CA / "root.crt").read_bytes() == root
    ca = local_ca(settings)
    assert ca.files.read("root.crt") == root
    # The embedded default keeps its random passphrase beside the keys, as it always did.
    assert ca.files.read("passphrase") is not None
    assert validate_pdf(download_revision(settings, doc), trust_for(settings)).valid
    assert not initialise(settings).created_ca  # nothing made twice


@pytest.mark.slow
def test_an_older_data_folder_moves_into_a_shared_s3_store(tmp_path, s3_endpoint):
    older = Settings(data_dir=tmp_path / "first" / "data")
    initialise(older)
    make_older(older)
    kept = (older.ca_dir / "passphrase").read_text(encoding="utf-8")
    lina = (older.keys_dir / "lina.p12").read_bytes()
    shared = s3_settings(older.data_dir, s3_endpoint, ca_passphrase="guess")
    with pytest.raises(KeyStoreError, match="wrong CA passphrase"):
        initialise(shared)
    assert open_store(shared).read_key(keyring.CURRENT) is None  # nothing moved
    assert older.ca_dir.is_dir()
    shared = replace(shared, ca_passphrase=kept)  # the operator sets the one kept so far
    assert not initialise(shared).created_ca
    store = open_store(shared)
    assert store.read_key("lina.p12") == lina
    assert local_ca(shared).files.read("passphrase") is None  # never into the bucket
    assert local_ca(shared).files.read("root.crt") == (
        older.data_dir / keyring.RETIRED_CA / "root.crt").read_bytes()
    second = other_machine(shared, tmp_path / "second" / "data")
    doc = quick_document(second, party="lina")
    sign_document(second, doc, "lina", "demo")
    assert validate_pdf(download_revision(second, doc), trust_for(second)).valid


def test_a_shared_store_needs_an_operator_held_ca_passphrase(tmp_path):
    settings = s3_settings(tmp_path / "data", "http://127.0.0.1:9", ca_passphrase="")
    env = {"PATH": os.environ["PATH"], **cli_environment(settings)}
    for url in (settings.store_url, f"file://{tmp_path / 'shared'}"):
        result = subprocess.run([COUNTERSIGN, "--data-dir", str(settings.data_dir), "init"],
                                capture_output=True, text=True, timeout=120,
                                env={**env, "COUNTERSIGN_STORE_URL": url})
        assert result.returncode == 2, result.stderr
        assert result.stderr.count("\n") == 1
        assert "needs COUNTERSIGN_CA_PASSPHRASE" in result.stderr
        assert not settings.data_dir.exists()  # refused before anything was made


@pytest.mark.slow
def test_a_bucket_with_a_default_retention_is_refused(tmp_path, s3_endpoint):
    settings = s3_settings(tmp_path / "data", s3_endpoint, bucket="keys-default-retention")
    client = s3_client(s3_endpoint)
    client.create_bucket(Bucket="keys-default-retention", ObjectLockEnabledForBucket=True)
    client.put_object_lock_configuration(Bucket="keys-default-retention",
                                         ObjectLockConfiguration={
                                             "ObjectLockEnabled": "Enabled",
                                             "Rule": {"DefaultRetention": {
                                                 "Mode": "COMPLIANCE", "Days": 1}}})
    with pytest.raises(StoreMisconfigured, match="default retention"):
        initialise(settings)


def test_when_another_machine_makes_the_ca_meanwhile_its_ca_is_kept(tmp_path, monkeypatch):
    first = Settings(data_dir=tmp_path / "one", store_url=f"file://{tmp_path / 'shared'}",
                     ca_passphrase=CA_PASSPHRASE)
    second = replace(first, data_dir=tmp_path / "two")
    create = LocalCA.create

    def meanwhile(files, passphrase=None):
        """The second machine makes its CA; before it can say so, the first one's lands."""
        made = create(files, passphrase)
        monkeypatch.setattr(LocalCA, "create", create)
        assert keyring.ensure_ca(first)
        return made

    monkeypatch.setattr(LocalCA, "create", meanwhile)
    assert not keyring.ensure_ca(second)
    objects = key_objects(first)
    generations = {n.split("/")[1] for n in objects if n.startswith("ca/") and n != "ca/current"}
    assert generations == {objects["ca/current"].decode()}  # the second one's is gone
    assert local_ca(second).files.read("root.crt") == local_ca(first).files.read("root.crt")


@pytest.mark.slow
def test_two_machines_initialising_at_once_make_one_ca(tmp_path, s3_endpoint):
    first = s3_settings(tmp_path / "one" / "data", s3_endpoint)
    second = replace(first, data_dir=tmp_path / "two" / "data")
    env = {"PATH": os.environ["PATH"], **cli_environment(first)}
    running = [subprocess.Popen([COUNTERSIGN, "--data-dir", str(m.data_dir), "init", "--json"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=env) for m in (first, second)]
    answers = []
    for process in running:
        out, err = process.communicate(timeout=180)
        assert process.returncode == 0, err
        answers.append(json.loads(out))
    assert sorted(a["created_ca"] for a in answers) == [False, True]
    objects = key_objects(first)
    generations = {n.split("/")[1] for n in objects if n.startswith("ca/") and n != "ca/current"}
    assert generations == {objects["ca/current"].decode()}  # the loser removed its own
    issuing = local_ca(first).certificate("issuing")
    for machine in (first, second):  # each made its demo parties under the one CA
        _, cert, _ = pkcs12.load_key_and_certificates(party_p12(machine, "zhangwei"), b"demo")
        cert.verify_directly_issued_by(issuing)  # raises if another CA issued it
