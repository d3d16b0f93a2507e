"""Third-party-style signed PDFs (tests/support/corpus.py), honest and hostile, against the verdict
an auditor should reach: honest files are never condemned, hostile ones always are, each
category has both sides, poppler's pdfsig agrees on the cryptography, and no input makes
``countersign verify`` print a traceback or a library's log."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline.cli import main
from pipeline.config import Settings, configure_logging
from pipeline.people.setup import initialise
from signing.validation import validate_pdf
from tests.support.corpus import FAILED, INDETERMINATE, PASSED, CorpusPKI, Sample, build_corpus

COUNTERSIGN = str(Path(sys.executable).with_name("countersign"))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[CorpusPKI, list[Sample]]:
    pki = CorpusPKI(tmp_path_factory.mktemp("corpus-pki"))
    return pki, build_corpus(pki)


@pytest.fixture(scope="module")
def reports(corpus) -> dict[str, object]:
    """The verdict on every sample, computed once: "category: name" → report."""
    pki, samples = corpus
    return {f"{s.category}: {s.name}": validate_pdf(s.pdf, pki.trust) for s in samples}


def _named(corpus, label: str) -> Sample:
    return next(s for s in corpus[1] if f"{s.category}: {s.name}" == label)


def _all_problems(report) -> str:
    return " ".join([*report.problems, *(p for s in (*report.signatures,
                                                    *report.document_timestamps)
                                         for p in s.problems)])


def _mismatch(sample: Sample, report) -> str | None:
    """Why ``report`` is not the verdict ``sample`` deserves, or None."""
    if report.indication != sample.expect or report.valid != (sample.expect == PASSED):
        return f"{report.indication}, expected {sample.expect}: {_all_problems(report)}"
    if not sample.honest and sample.reason.lower() not in _all_problems(report).lower():
        return f"the problems do not say {sample.reason!r}: {_all_problems(report)}"
    first = report.first_problem()
    if first is not None and ("\n" in first.en or len(first.en) > 300):
        return f"the first problem is not one sentence: {first.en!r}"
    return None


def test_each_sample_gets_the_verdict_it_deserves(corpus, reports):
    _, samples = corpus
    wrong = {label: why for s in samples
             if (why := _mismatch(s, reports[label := f"{s.category}: {s.name}"]))}
    assert wrong == {}


def test_no_honest_file_is_condemned_and_every_hostile_one_is_caught(corpus, reports):
    _, samples = corpus
    verdicts = {(s.category, s.name, s.honest): reports[f"{s.category}: {s.name}"].indication
                for s in samples}
    condemned = [k for k, v in verdicts.items() if k[2] and v == FAILED]
    passed_hostile = [k for k, v in verdicts.items() if not k[2] and v == PASSED]
    print(f"{sum(k[2] for k in verdicts)} honest files, {len(condemned)} condemned; "
          f"{sum(not k[2] for k in verdicts)} hostile files, {len(passed_hostile)} passed")
    assert condemned == [] and passed_hostile == []


def test_every_category_has_an_honest_and_a_hostile_side(corpus):
    _, samples = corpus
    sides: dict[str, set[bool]] = {}
    for sample in samples:
        sides.setdefault(sample.category, set()).add(sample.honest)
    assert {category for category, seen in sides.items() if seen != {True, False}} == set()
    assert len(sides) >= 14


def test_benign_additions_to_an_uncertified_document_are_warnings(corpus):
    """And an annotation that may cover content, where the certification allows it."""
    pki, _ = corpus
    for label, words in [("uncertified additions: sticky note", "Text annotation"),
                         ("uncertified additions: form filled", "remarks was filled in"),
                         ("certification level: free-text annotation after P=3 certification",
                          "FreeText annotation added on page 1 paints over")]:
        report = validate_pdf(_named(corpus, label).pdf, pki.trust)
        assert report.indication == PASSED and report.valid
        assert any(words in w and "added after signing" in w for w in report.warnings)


def test_intact_bytes_under_an_unknown_chain_are_indeterminate(corpus):
    pki, _ = corpus
    report = validate_pdf(_named(corpus, "unknown chain: intact signature, unknown root").pdf,
                          pki.trust)
    signature = report.signatures[0]
    assert signature.intact and not signature.trusted
    assert (signature.indication, signature.subindication) == (
        INDETERMINATE, "NO_CERTIFICATE_CHAIN_FOUND")
    assert report.as_dict()["indication"] == INDETERMINATE


def test_a_copied_timestamp_is_named_as_such_not_as_untrusted(corpus):
    pki, _ = corpus
    copied = validate_pdf(_named(
        corpus, "signature timestamps: timestamp copied from another signature").pdf, pki.trust)
    untrusted = validate_pdf(_named(
        corpus, "signature timestamps: timestamp by an unknown authority").pdf, pki.trust)
    assert copied.signatures[0].subindication == "HASH_FAILURE"
    assert "copied from another signature" in _all_problems(copied)
    assert "not trusted" not in _all_problems(copied)
    assert "timestamp authority is not trusted" in _all_problems(untrusted)
    assert "copied" not in _all_problems(untrusted)


def test_the_service_quiets_library_logs_too(tmp_path, monkeypatch):
    import logging

    from api.app import create_app

    monkeypatch.delenv("COUNTERSIGN_DEBUG", raising=False)
    create_app(Settings(data_dir=tmp_path / "data"))
    assert logging.getLogger("pyhanko").getEffectiveLevel() > logging.CRITICAL
    monkeypatch.setenv("COUNTERSIGN_DEBUG", "1")
    create_app(Settings(data_dir=tmp_path / "data"))
    assert logging.getLogger("pyhanko").getEffectiveLevel() == logging.DEBUG
    configure_logging(False)  # back to quiet for the tests that follow


def test_unsupported_algorithm_is_indeterminate_with_a_reason(corpus):
    pki, _ = corpus
    report = validate_pdf(_named(corpus, "unsupported algorithm: SM2-with-SM3").pdf, pki.trust)
    signature = report.signatures[0]
    assert signature.intact
    assert (signature.indication, signature.subindication) == (
        INDETERMINATE, "CRYPTO_CONSTRAINTS_FAILURE")
    assert "1.2.156.10197.1.501" in _all_problems(report)
    assert "does not verify" not in _all_problems(report)


def _pdfsig(tmp_path: Path, sample: Sample) -> list[str]:
    path = tmp_path / "sample.pdf"
    path.write_bytes(sample.pdf)
    out = subprocess.run(["pdfsig", "-nocert", str(path)], capture_output=True, text=True,
                         timeout=60).stdout
    return re.findall(r"Signature Validation: (.+?)\.?$", out, flags=re.M)


def test_pdfsig_agrees_on_the_cryptography(corpus, reports, tmp_path):
    """Second opinion: where the verdict says the signed bytes are intact and the value
    verifies, poppler (NSS) says the same; where it says the bytes were altered, poppler
    sees the digest mismatch. (poppler does not read plain ECDSA, SM2 or document
    timestamps, and checks only the first SignerInfo.)"""
    _, samples = corpus
    checked = 0
    for sample in samples:
        if sample.category in ("plain ECDSA", "unsupported algorithm"):
            continue
        report = reports[f"{sample.category}: {sample.name}"]
        regular = [s for s in report.signatures if s.signed_revision is not None]
        verdicts = [v for v in _pdfsig(tmp_path, sample) if "not yet been verified" not in v]
        if len(verdicts) != len(regular):
            continue  # an unsigned or duplicated field: poppler lists it differently
        for ours, theirs in zip(regular, verdicts, strict=True):
            if not ours.intact:
                assert theirs == "Digest Mismatch", (sample.name, theirs)
            elif ours.intact and sample.category != "two SignerInfos":
                assert theirs == "Signature is Valid", (sample.name, theirs)
            checked += 1
    assert checked >= 40


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Settings:
    settings = Settings(data_dir=tmp_path_factory.mktemp("third-party") / "data")
    initialise(settings)
    return settings


def test_verify_never_prints_a_traceback_or_a_library_log(corpus, data_dir, tmp_path):
    _, samples = corpus
    runner = CliRunner()
    for index, sample in enumerate(samples):
        path = tmp_path / f"{index}.pdf"
        path.write_bytes(sample.pdf)
        result = runner.invoke(main, ["--data-dir", str(data_dir.data_dir), "verify",
                                      str(path), "--json"])
        assert result.exit_code in (0, 1), (sample.name, result.output)
        assert "Traceback" not in result.output and "pyhanko" not in result.output
        verdict = json.loads(result.stdout)
        assert verdict["indication"] in (PASSED, INDETERMINATE, FAILED)
        assert all({"indication", "subindication", "warnings"} <= set(s)
                   for s in verdict["signatures"])
        if sample.honest:  # the data folder trusts none of these roots: at worst unsure
            assert verdict["indication"] != FAILED, (sample.name, verdict)


def test_library_logs_only_with_verbose(corpus, data_dir, tmp_path):
    """pyHanko logs a rejected revision with a full traceback; the user sees one verdict,
    and the details only when asking for them."""
    path = tmp_path / "hostile.pdf"
    path.write_bytes(_named(corpus, "uncertified additions: shadow attack: overlay").pdf)
    base = [COUNTERSIGN, "--data-dir", str(data_dir.data_dir)]
    quiet = subprocess.run([*base, "verify", str(path)], capture_output=True, text=True,
                           timeout=120)
    assert quiet.returncode == 1 and quiet.stderr == ""
    assert "page 1 content changed" in quiet.stdout and "Traceback" not in quiet.stdout
    verbose = subprocess.run([*base, "--verbose", "verify", str(path)], capture_output=True,
                             text=True, timeout=120)
    assert verbose.returncode == 1 and "pyhanko" in verbose.stderr
