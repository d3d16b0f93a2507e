"""Benchmark: the project's sign and verify steps against bare pyHanko calls, in one run.

Signing: for the same prepared PDF, key, stamp and timestamp authority, (a) signing.sign.sign_pdf
(certificate pre-check, field checks, the stamp) vs (b) one bare PdfSigner.sign_pdf call with
the same stamp style. Verifying: a three-signature document through (a)
signing.validation.validate_pdf vs (b) bare pyHanko validate_pdf_signature per signature
with the same revocation-requiring validation context. Runs alternate a, b, a, b… so that
machine noise hits both; prints operations/s and the ratios a/b (time per operation).

    .venv/bin/python bench/sign.py [--rounds 8]
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.fields import MDPPerm, SigSeedSubFilter
from pyhanko.sign.signers import PdfSignatureMetadata, PdfSigner
from pyhanko.sign.validation import KeyUsageConstraints, validate_pdf_signature

from bench.generate import EXAMPLES
from pipeline.config import Settings
from pipeline.forms.manifest import get_template
from pipeline.forms.validate import validate_form
from pipeline.people.parties import DEMO_PASSPHRASE
from pipeline.people.setup import initialise
from pipeline.render.docx import render_docx
from pipeline.render.libreoffice import ConverterPool, PoolSpec
from pipeline.signing_setup import signing_environment
from signing.appearance import Stamp, stamp_style
from signing.fields import find_signature_places, prepare_fields
from signing.keys import load_pkcs12_signer
from signing.sign import SignatureRequest, sign_pdf
from signing.trust import validation_context
from signing.validation import signature_timestamp_time, validate_pdf

CST = timezone(timedelta(hours=8))


def timed(function) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=8)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="countersign-bench-sign-"))
    settings = Settings(data_dir=work / "data")
    initialise(settings)
    env = signing_environment(settings)
    # A progress sync with two supporting departments: three signature fields.
    template = get_template("progress_sync")
    form = json.loads((EXAMPLES / "progress_sync.json").read_text(encoding="utf-8"))
    form["support_requests"].append({"dept": "产品部", "content": "评审", "due": "2024-05-26"})
    with ConverterPool(PoolSpec(size=1)) as pool:
        pdf = pool.convert(render_docx(template, validate_form(template, form), "BENCH-1"))
    pdf = prepare_fields(pdf, find_signature_places(pdf))
    signer = load_pkcs12_signer((settings.keys_dir / "zhangwei.p12").read_bytes(),
                                DEMO_PASSPHRASE)
    stamp = Stamp("张伟", "市场部", "同意 / Approved", datetime.now(CST))
    request = SignatureRequest("responsible", stamp, certify=True)

    def ours() -> bytes:
        return sign_pdf(pdf, request, signer, env.tsa, env.trust, env.font)

    def bare() -> bytes:
        meta = PdfSignatureMetadata(field_name="responsible", md_algorithm="sha256",
                                    subfilter=SigSeedSubFilter.PADES, reason=stamp.reason,
                                    name=stamp.name, certify=True,
                                    docmdp_permissions=MDPPerm.FILL_FORMS)
        out = io.BytesIO()
        PdfSigner(meta, signer, timestamper=env.tsa.timestamper(),
                  stamp_style=stamp_style(env.font)).sign_pdf(
            IncrementalPdfFileWriter(io.BytesIO(pdf)), existing_fields_only=True, output=out,
            appearance_text_params=stamp.text_params())
        return out.getvalue()

    ours(), bare()  # warm caches (font factory, CRLs) for both
    sign_a, sign_b = [], []
    for _ in range(args.rounds):
        sign_a.append(timed(ours))
        sign_b.append(timed(bare))

    # The three-signature document: certify, then two approvals.
    three = ours()
    for field, party, name, dept in (("supporter-1", "zhaomin", "赵敏", "市场部"),
                                     ("supporter-2", "lina", "李娜", "产品部")):
        three = sign_pdf(three, SignatureRequest(field, Stamp(name, dept, "同意",
                                                              datetime.now(CST)), False),
                         load_pkcs12_signer((settings.keys_dir / f"{party}.p12").read_bytes(),
                                            DEMO_PASSPHRASE), env.tsa, env.trust, env.font)
    report = validate_pdf(three, env.trust)
    assert report.valid and len(report.signatures) == 3, report.as_dict()

    def verify_ours() -> None:
        assert validate_pdf(three, env.trust).valid

    def verify_bare() -> None:
        reader = PdfFileReader(io.BytesIO(three))
        for sig in reader.embedded_regular_signatures:
            context = validation_context(env.trust)
            status = validate_pdf_signature(
                sig, context, key_usage_settings=KeyUsageConstraints(
                    key_usage={"non_repudiation"}))
            assert status.bottom_line

    verify_ours(), verify_bare()
    verify_a, verify_b = [], []
    for _ in range(args.rounds):
        verify_a.append(timed(verify_ours))
        verify_b.append(timed(verify_bare))

    # The same document closed (PAdES B-LTA), verified offline from its own DSS.
    from pyhanko.sign.validation.dss import DocumentSecurityStore
    from pyhanko_certvalidator import ValidationContext

    from signing.ltv import add_long_term_validation

    closed = add_long_term_validation(three, env.trust, env.tsa)
    offline_trust = env.trust.offline()
    assert validate_pdf(closed, offline_trust, offline=True).valid

    def lta_ours() -> None:
        assert validate_pdf(closed, offline_trust, offline=True).valid

    def lta_bare() -> None:
        reader = PdfFileReader(io.BytesIO(closed))
        dss = DocumentSecurityStore.read_dss(reader)
        for sig in reader.embedded_regular_signatures:
            context = dss.as_validation_context({
                "trust_roots": list(offline_trust.roots), "allow_fetching": False,
                "revocation_mode": "require", "retroactive_revinfo": True,
                "moment": signature_timestamp_time(sig), "crls": list(offline_trust.crls),
                "other_certs": list(offline_trust.other_certs)})
            status = validate_pdf_signature(sig, context, key_usage_settings=KeyUsageConstraints(
                key_usage={"non_repudiation"}))
            assert status.bottom_line
        for ts in reader.embedded_timestamp_signatures:
            from pyhanko.sign.validation import validate_pdf_timestamp

            assert validate_pdf_timestamp(ts, ValidationContext(
                trust_roots=list(offline_trust.roots), allow_fetching=False,
                crls=list(offline_trust.crls), other_certs=list(offline_trust.other_certs),
                revocation_mode="require")).valid

    lta_ours(), lta_bare()
    lta_a, lta_b = [], []
    for _ in range(args.rounds):
        lta_a.append(timed(lta_ours))
        lta_b.append(timed(lta_bare))

    def line(label: str, samples: list[float], unit: str) -> float:
        median = statistics.median(samples)
        print(f"{label:<34} {1 / median:7.2f} {unit}/s  (median {1000 * median:7.1f} ms "
              f"of {len(samples)})")
        return median

    print(f"rounds: {args.rounds}, local CA, in-process TSA, CJK stamp")
    a = line("(a) sign: countersign sign_pdf", sign_a, "signatures")
    b = line("(b) sign: bare pyHanko PdfSigner", sign_b, "signatures")
    print(f"sign a/b = {a / b:.2f}  (time per signature, target <= 1.15)")
    a = line("(a) verify 3 signatures: countersign", verify_a, "documents")
    b = line("(b) verify 3 signatures: bare pyHanko", verify_b, "documents")
    print(f"verify a/b = {a / b:.2f}  (time per document, target <= 1.3)")
    a = line("(a) verify closed B-LTA: countersign", lta_a, "documents")
    b = line("(b) verify closed B-LTA: bare pyHanko", lta_b, "documents")
    print(f"verify B-LTA a/b = {a / b:.2f}  (time per document, target <= 1.3)")


if __name__ == "__main__":
    main()
