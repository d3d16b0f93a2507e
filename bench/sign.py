"""Benchmark: signing, verifying and starting, each against its outside peer, in one run.

(1) ``POST /api/documents/{id}/sign`` on a running ``countersign serve`` (HTTP, token check,
    certificate pre-check, the Chinese stamp, RFC 3161 timestamp, store, ledger) against
    bare pyHanko signing the same prepared PDF: the same PKCS#12 file opened with the same
    passphrase, the same TSA key (pyHanko's own in-process ``DummyTimeStamper``, kept across
    rounds), pyHanko's default stamp. Each round signs a fresh document on both sides.
(2) ``countersign verify`` of a closed two-signature document (PAdES B-LTA: both signatures
    and the document timestamp, revocation data required) against ``pyhanko sign validate
    --trust-replace --trust ROOT`` of the same file (both signatures): two processes, start-up
    included.
(3) ``countersign --help`` against ``pyhanko --help``.

Runs alternate ours/peer; medians; the ratios are time(ours) / time(peer).

    .venv/bin/python bench/sign.py [--rounds 12] [--results FILE]
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import sys
import tempfile
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign.fields import MDPPerm, SigSeedSubFilter
from pyhanko.sign.signers import PdfSignatureMetadata, PdfSigner, SimpleSigner
from pyhanko.sign.timestamps.dummy_client import DummyTimeStamper
from pyhanko_certvalidator.registry import SimpleCertificateStore

from bench.common import BIN, Row, Server, alternate, median, ms, record, run_quietly
from pipeline.config import Settings
from pipeline.people.access import create_token
from pipeline.people.parties import DEMO_PASSPHRASE, get_party
from pipeline.people.setup import initialise
from pipeline.record import keyring
from pipeline.signing_setup import local_ca

FORM = json.loads((ROOT / "examples" / "requirement_confirmation.json")
                  .read_text(encoding="utf-8"))


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def create_documents(client: httpx.Client, admin: str, count: int) -> list[str]:
    """Create ``count`` requirement confirmations (zhangwei requests, lina receives)."""
    ids = []
    for _ in range(count):
        response = client.post("/api/documents", headers=auth(admin), json={
            "template": "requirement_confirmation", "data": FORM,
            "parties": [{"role": "requester", "party": "zhangwei"},
                        {"role": "receiver", "party": "lina"}]})
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
    return ids


def bench_sign(settings: Settings, client: httpx.Client, admin: str, rounds: int,
               results: Path | None) -> str:
    """Run (1); return the id of a document the requester has signed (for (2))."""
    tokens = {party: create_token(settings, "party", party) for party in ("zhangwei", "lina")}
    tsa = local_ca(settings).timestamp_authority()
    peer_timestamper = DummyTimeStamper(
        tsa_cert=tsa.cert, tsa_key=tsa.key,
        certs_to_embed=SimpleCertificateStore.from_certs([tsa.cert, *tsa.chain]))
    p12 = keyring.party_key(settings, get_party(settings, "zhangwei").key_file)
    documents = create_documents(client, admin, rounds + 1)
    prepared = {doc: client.get(f"/api/documents/{doc}/pdf", headers=auth(admin)).content
                for doc in documents}
    queue_ours, queue_peer, queue_kept = list(documents), list(documents), list(documents)
    kept_timestamper = tsa.timestamper()

    def ours() -> None:
        response = client.post(f"/api/documents/{queue_ours.pop(0)}/sign",
                               json={"passphrase": DEMO_PASSPHRASE},
                               headers=auth(tokens["zhangwei"]))
        assert response.status_code == 200, response.text

    def bare(timestamper, pdf: bytes) -> None:
        signer = SimpleSigner.load_pkcs12_data(p12, [], DEMO_PASSPHRASE.encode())
        metadata = PdfSignatureMetadata(field_name="requester", md_algorithm="sha256",
                                        subfilter=SigSeedSubFilter.PADES, certify=True,
                                        docmdp_permissions=MDPPerm.FILL_FORMS)
        out = io.BytesIO()
        PdfSigner(metadata, signer, timestamper=timestamper).sign_pdf(
            IncrementalPdfFileWriter(io.BytesIO(pdf)), existing_fields_only=True, output=out)

    def peer() -> None:
        bare(peer_timestamper, prepared[queue_peer.pop(0)])

    def peer_kept_key() -> None:
        bare(kept_timestamper, prepared[queue_kept.pop(0)])

    ours(), peer(), peer_kept_key()  # the first of each warms caches; not counted
    mine, theirs, kept = alternate(ours, peer, peer_kept_key, rounds=rounds)
    a, b, c = median(mine), median(theirs), median(kept)
    print(f"(1) sign, {rounds} rounds: POST /api/documents/{{id}}/sign median {ms(a)}; "
          f"bare pyHanko median {ms(b)}; bare pyHanko with the TSA key loaded once (as the "
          f"service does) median {ms(c)}: {a / c:.2f}×")
    record(Row("POST …/sign ÷ bare pyHanko (same PDF, PKCS#12, TSA; default stamp)", ms(a),
               ms(b), f"{a / b:.2f}×", "≤ 2.0×", a / b <= 2.0), results)

    signed = documents[0]
    response = client.post(f"/api/documents/{signed}/sign", json={"passphrase": "demo"},
                           headers=auth(tokens["lina"]))
    assert response.status_code == 200, response.text
    response = client.post(f"/api/documents/{signed}/close", headers=auth(admin))
    assert response.status_code == 200, response.text
    return signed


def bench_verify(settings: Settings, closed: Path, rounds: int, results: Path | None) -> None:
    """Run (2): two CLI processes on the same closed document."""
    ours_cmd = [str(BIN / "countersign"), "--data-dir", str(settings.data_dir), "verify",
                str(closed)]
    # --trust-replace: the local root alone, as countersign trusts it (without it pyhanko
    # also loads the system's trust store).
    root = settings.data_dir / "bench-root.crt"  # the CA is in the store; pyhanko reads a file
    root.write_bytes(local_ca(settings).files.read("root.crt"))
    peer_cmd = [str(BIN / "pyhanko"), "sign", "validate", "--trust-replace", "--trust",
                str(root), str(closed)]
    run_quietly(ours_cmd), run_quietly(peer_cmd)
    mine, theirs = alternate(lambda: run_quietly(ours_cmd), lambda: run_quietly(peer_cmd),
                             rounds=rounds)
    a, b = median(mine), median(theirs)
    print(f"(2) verify a closed two-signature document, {rounds} rounds: countersign verify "
          f"median {ms(a)}; pyhanko sign validate median {ms(b)}")
    record(Row("countersign verify ÷ pyhanko sign validate (closed, 2 signatures)", ms(a),
               ms(b), f"{a / b:.2f}×", "≤ 1.0×", a / b <= 1.0), results)


def bench_help(rounds: int, results: Path | None) -> None:
    """Run (3): the time to a usable command line."""
    ours_cmd, peer_cmd = [str(BIN / "countersign"), "--help"], [str(BIN / "pyhanko"), "--help"]
    run_quietly(ours_cmd), run_quietly(peer_cmd)
    mine, theirs = alternate(lambda: run_quietly(ours_cmd), lambda: run_quietly(peer_cmd),
                             rounds=rounds)
    a, b = median(mine), median(theirs)
    print(f"(3) --help, {rounds} rounds: countersign median {ms(a)}; pyhanko median {ms(b)}")
    record(Row("countersign --help ÷ pyhanko --help", ms(a), ms(b), f"{a / b:.2f}×",
               "≤ 0.3×", a / b <= 0.3), results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--results", type=Path, help="append summary rows here (JSON lines)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="countersign-bench-sign-"))
    try:
        settings = Settings(data_dir=work / "data")
        initialise(settings)
        admin = create_token(settings, "admin")
        with Server(settings.data_dir) as server, \
                httpx.Client(base_url=server.base, timeout=300) as client:
            closed_id = bench_sign(settings, client, admin, args.rounds, args.results)
            closed = work / "closed.pdf"
            closed.write_bytes(client.get(f"/api/documents/{closed_id}/pdf",
                                          headers=auth(admin)).content)
        bench_verify(settings, closed, max(5, args.rounds // 2), args.results)
        bench_help(max(5, args.rounds // 2), args.results)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
