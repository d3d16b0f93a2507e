"""verify: files and ledger documents, JSON per the contract, HTML report, exit codes."""

from __future__ import annotations

import io
import json
import re
import subprocess

import pytest

from pipeline.config import Settings
from pipeline.documents.close import close_document
from pipeline.documents.create import create_document
from pipeline.documents.repository import document_status, download_revision, revision_store
from pipeline.documents.sign import sign_document
from pipeline.people.setup import initialise
from tests.support.cli import COUNTERSIGN
from tests.support.forms import example
from tests.support.sql import sql

pytestmark = pytest.mark.slow  # every document here is rendered by LibreOffice


@pytest.fixture(scope="module")
def closed(tmp_path_factory, pool):
    settings = Settings(data_dir=tmp_path_factory.mktemp("audit") / "data")
    initialise(settings)
    doc = create_document(settings, "requirement_confirmation",
                          example("requirement_confirmation"),
                          [("requester", "zhangwei"), ("receiver", "lina")], pool).id
    sign_document(settings, doc, "zhangwei", "demo")
    sign_document(settings, doc, "lina", "demo")
    close_document(settings, doc, pool)
    return settings, doc


def cli(settings: Settings, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([COUNTERSIGN, "--data-dir", str(settings.data_dir), *args],
                          capture_output=True, text=True, timeout=120)


def test_verify_a_closed_file(closed, tmp_path):
    settings, doc = closed
    pdf = tmp_path / "final.pdf"
    pdf.write_bytes(download_revision(settings, doc))
    html = tmp_path / "report.html"
    result = cli(settings, "verify", str(pdf), "--json", "--html", str(html))
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["valid"] and report["long_term"]
    assert report["indication"] == "TOTAL_PASSED" and report["warnings"] == []
    for item in [*report["signatures"], *report["document_timestamps"]]:
        assert {"field", "signer", "valid", "intact", "trusted", "timestamp",
                "modification_level", "problems", "indication", "subindication"} <= set(item)
        assert (item["indication"], item["subindication"]) == ("TOTAL_PASSED", None)
    assert [s["signer"] for s in report["signatures"]] == ["张伟 / 市场部", "李娜 / 产品部"]
    page = html.read_text(encoding="utf-8")
    assert "验证报告" in page and "Verification report" in page and "李娜 / 产品部" in page


@pytest.mark.slow
def test_every_revision_stays_pdf_a_2b(closed):
    """Rendered, prepared, each signature, closure: the XMP claims PDF/A-2b and nothing
    declares a PDF version above 1.7 (PDF/A-2 is based on PDF 1.7)."""
    from pyhanko.pdf_utils.reader import PdfFileReader

    from pipeline.documents.repository import document_events

    settings, doc = closed
    count = sum(1 for e in document_events(settings, doc) if e["revision_after"])
    assert count == 5  # rendered, prepared, requester, receiver, closed
    for number in range(1, count + 1):
        pdf = download_revision(settings, doc, number)
        reader = PdfFileReader(io.BytesIO(pdf), strict=False)
        header = float(pdf[5:8].decode())
        catalog = float(str(reader.root.get("/Version", "/1.0"))[1:])
        assert max(header, catalog) <= 1.7, (number, header, catalog)
        extensions = reader.root.get("/Extensions", {})
        for entry in extensions.values():
            for ext in entry if isinstance(entry, list) else [entry]:
                assert float(str(ext["/BaseVersion"])[1:]) <= 1.7, (number, extensions)
        xmp = reader.root["/Metadata"].data.decode("utf-8")
        assert re.search(r'pdfaid:part(>|=")2', xmp), number
        assert re.search(r'pdfaid:conformance(>|=")B', xmp), number


def test_verify_a_ledger_document_records_the_verdict(closed):
    settings, doc = closed
    result = cli(settings, "verify", "--document", doc, "--json")
    assert result.returncode == 0, result.stdout
    assert json.loads(result.stdout)["valid"]
    kinds = [r[0] for r in sql(settings.database, "SELECT kind FROM events WHERE "
                                                  "document_id = :doc ORDER BY seq", {"doc": doc})]
    assert kinds[-1] == "verified"


@pytest.mark.parametrize("content, reason", [
    (b"", "cannot parse"),
    (b"%PDF-1.7\n%%EOF\n", "cannot parse|no signature"),
    (b"not a pdf at all", "cannot parse"),
])
def test_verify_hostile_files_is_a_verdict_not_a_crash(closed, tmp_path, content, reason):
    settings, _ = closed
    path = tmp_path / "x.pdf"
    path.write_bytes(content)
    result = cli(settings, "verify", str(path), "--json")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    report = json.loads(result.stdout)
    assert not report["valid"]
    assert re.search(reason, " ".join(report["problems"]))


def test_verify_document_names_an_altered_stored_revision(tmp_path, pool):
    settings = Settings(data_dir=tmp_path / "data")
    initialise(settings)
    doc = create_document(settings, "requirement_confirmation",
                          example("requirement_confirmation"),
                          [("requester", "zhangwei"), ("receiver", "lina")], pool).id
    sign_document(settings, doc, "zhangwei", "demo")
    head = document_status(settings, doc).revision
    path = revision_store(settings).path(head)
    data = bytearray(path.read_bytes())
    data[-200] ^= 0x20
    path.write_bytes(bytes(data))
    result = cli(settings, "verify", "--document", doc, "--json")
    assert result.returncode == 1
    assert any(head in p for p in json.loads(result.stdout)["problems"])


def test_verify_needs_exactly_one_subject(closed):
    settings, doc = closed
    result = cli(settings, "verify")
    assert result.returncode == 2 and "give a PDF file or --document" in result.stderr


def test_bundle_verifies_offline_elsewhere_and_any_altered_byte_fails(closed, tmp_path):
    import zipfile

    settings, doc = closed
    bundle = tmp_path / "bundle.zip"
    exported = cli(settings, "export", doc, "--out", str(bundle), "--json")
    assert exported.returncode == 0, exported.stderr
    # Another machine: no data folder at all.
    elsewhere = Settings(data_dir=tmp_path / "nothing-here")
    ok = cli(elsewhere, "verify-bundle", str(bundle), "--json")
    assert ok.returncode == 0, ok.stdout
    assert json.loads(ok.stdout)["valid"] and not elsewhere.data_dir.exists()

    with zipfile.ZipFile(bundle) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    for name in members:
        altered = dict(members)
        data = bytearray(altered[name])
        data[len(data) // 2] ^= 0x01
        altered[name] = bytes(data)
        copy = tmp_path / f"altered-{name}.zip"
        with zipfile.ZipFile(copy, "w") as archive:
            for member, content in altered.items():
                archive.writestr(member, content)
        result = cli(elsewhere, "verify-bundle", str(copy), "--json")
        assert result.returncode == 1, name
        assert not json.loads(result.stdout)["valid"], name

    not_closed = cli(settings, "export", "doc-missing", "--out", str(tmp_path / "x.zip"))
    assert not_closed.returncode == 2
