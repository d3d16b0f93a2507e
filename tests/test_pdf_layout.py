"""What a printed document looks like, checked on real LibreOffice output and real
signatures: the seal-like stamp with the signer's date inside its cell, legible type, the
minutes' signature block never alone on a page, whole Latin words, Chinese fonts and
language declared as such."""

from __future__ import annotations

import io
import re
import subprocess
from pathlib import Path

import pytest
from pdfminer.high_level import extract_pages
from pdfminer.layout import LAParams
from pypdf import PdfReader

from pipeline.config import Settings
from pipeline.documents.create import create_document
from pipeline.documents.repository import download_revision
from pipeline.documents.sign import sign_document
from pipeline.documents.status import DocumentStatus
from pipeline.forms.manifest import get_template
from pipeline.forms.validate import validate_form
from pipeline.render.docx import render_docx
from signing.fields import _rules, find_signature_places
from tests.support.data import initialised
from tests.support.forms import TEMPLATE_KEYS, example
from tests.support.pdf import pdf_text

pytestmark = pytest.mark.slow
STAMP_TIME = re.compile(r"(\d{4}-\d{2}-\d{2}) \d{2}:\d{2}:\d{2} \(UTC\+08:00\)")


@pytest.fixture(scope="module")
def settings(tmp_path_factory) -> Settings:
    return initialised(tmp_path_factory.mktemp("layout") / "data")


def page_text(pdf: bytes, page: int) -> str:
    """Return the text of one page (1-based), as poppler extracts it."""
    result = subprocess.run(["pdftotext", "-enc", "UTF-8", "-f", str(page), "-l", str(page),
                             "-", "-"], input=pdf, capture_output=True, check=True)
    return result.stdout.decode("utf-8")


def page_count(pdf: bytes) -> int:
    return len(PdfReader(io.BytesIO(pdf)).pages)


def signed_minutes(settings: Settings, pool) -> tuple[DocumentStatus, bytes]:
    doc = create_document(settings, "meeting_minutes", example("meeting_minutes"),
                          [("host", "lina"), ("attendee", "wangqiang"), ("attendee", "zhaomin")],
                          pool)
    sign_document(settings, doc.id, "lina", "demo")
    status = sign_document(settings, doc.id, "wangqiang", "demo")
    return status, download_revision(settings, doc.id)


def stamp_streams(pdf: bytes) -> dict[str, bytes]:
    """Return the appearance stream of every signed signature widget, by field name."""
    streams = {}
    for page in PdfReader(io.BytesIO(pdf)).pages:
        for ref in page.get("/Annots") or ():
            annot = ref.get_object()
            if annot.get("/FT") == "/Sig" and annot.get("/V") is not None:
                streams[annot["/T"]] = annot["/AP"]["/N"].get_object().get_data()
    return streams


def test_each_signer_date_is_in_its_stamp_and_no_blank_date_column(settings, pool):
    status, pdf = signed_minutes(settings, pool)
    text = pdf_text(pdf)
    dates = STAMP_TIME.findall(text)
    assert sorted(dates) == sorted(s.signed_at[:10] for s in status.signed)
    assert not re.search(r"年\s*月\s*日", text)
    assert "签字 / 签章（含签署时间）" in text


def test_stamps_are_seals_with_legible_type(settings, pool):
    _, pdf = signed_minutes(settings, pool)
    streams = stamp_streams(pdf)
    assert set(streams) == {"host", "attendee-1"}
    for stream in streams.values():
        sizes = [float(size) for size in re.findall(rb"/F1 ([\d.]+) Tf", stream)]
        assert sizes and min(sizes) >= 7.0, sizes
        assert b"0.800 0.070 0.070 RG" in stream  # the red ring
        assert b" c S" in stream  # drawn as a closed curve


def test_stamps_stay_inside_their_cells(settings, pool, tmp_path):
    _, pdf = signed_minutes(settings, pool)
    (tmp_path / "signed.pdf").write_bytes(pdf)
    pages = list(extract_pages(io.BytesIO(pdf), laparams=LAParams()))
    widgets = []
    for number, page in enumerate(PdfReader(io.BytesIO(pdf)).pages):
        for ref in page.get("/Annots") or ():
            annot = ref.get_object()
            if annot.get("/FT") == "/Sig":
                widgets.append((number, [float(v) for v in annot["/Rect"]]))
    assert len(widgets) == 3
    for number, (x0, y0, x1, y1) in widgets:
        horizontal, vertical = _rules(pages[number])
        assert x1 - x0 > 180 and y1 - y0 > 50  # room for a seal and the signer's details
        for y, left, right in horizontal:
            assert not (left < x1 and right > x0 and y0 - 1 < y < y1 + 1), (y, x0, y0, x1, y1)
        for x, low, high in vertical:
            assert not (low < y1 and high > y0 and x0 - 1 < x < x1 + 1), (x, x0, y0, x1, y1)
    # Rendered, every red pixel of the page (the seals) lies inside a signature field.
    page_index = widgets[0][0]
    subprocess.run(["pdftoppm", "-r", "72", "-png", "-f", str(page_index + 1), "-l",
                    str(page_index + 1), "-singlefile", str(tmp_path / "signed.pdf"),
                    str(tmp_path / "page")], check=True)
    from PIL import Image

    image = Image.open(tmp_path / "page.png").convert("RGB")
    width, height = image.size
    boxes = [box for number, box in widgets if number == page_index]
    pixels = image.tobytes()
    red = [(n % width, n // width) for n in range(width * height)
           if pixels[3 * n] > 150 and pixels[3 * n + 1] < 90 and pixels[3 * n + 2] < 90]
    assert len(red) > 100
    for x, y in red:
        assert any(b[0] - 1 <= x <= b[2] + 1 and b[1] - 1 <= height - y <= b[3] + 1
                   for b in boxes), (x, y)


@pytest.mark.parametrize("key", TEMPLATE_KEYS)
def test_fields_sit_inside_the_signature_cells(pool, key):
    template = get_template(key)
    pdf = pool.convert(render_docx(template, validate_form(template, example(key)), "N-1"))
    pages = list(extract_pages(io.BytesIO(pdf), laparams=LAParams()))
    places = find_signature_places(pdf)
    assert places
    for place in places:
        x0, y0, x1, y1 = place.box
        assert x1 - x0 > 180 and y1 - y0 > 50, place
        horizontal, vertical = _rules(pages[place.page])
        assert any(y > y1 and left <= x0 and right >= x1 for y, left, right in horizontal)
        assert not any(left < x1 and right > x0 and y0 - 1 < y < y1 + 1
                       for y, left, right in horizontal), place


def test_minutes_signature_block_is_never_alone_and_later_pages_say_what_they_are(pool):
    template = get_template("meeting_minutes")
    form = example("meeting_minutes")
    form["agenda"] = [f"议题 {n}：季度目标与资源协调" for n in range(1, 16)]
    pdf = pool.convert(render_docx(template, validate_form(template, form), "JY-2024-007"))
    pages = page_count(pdf)
    assert pages >= 2
    last = page_text(pdf, pages)
    assert "签字确认" in last
    # Content of the document goes with the signature block to its page …
    assert "备注" in last and "纪要分发" in last
    # … and every page after the first names the document and its number.
    for number in range(2, pages + 1):
        header = page_text(pdf, number)
        assert "会议纪要" in header and "JY-2024-007" in header, number
    assert "纪要编号：JY-2024-007" in page_text(pdf, 1)


def test_latin_words_are_never_split(pool):
    template = get_template("meeting_minutes")
    form = example("meeting_minutes") | {
        "discussion": "讨论了 internationalization、PaymentGateway reconciliation 与 "
                      "observability dashboards 的优先级，决定先完成 Kubernetes migration 再做 "
                      "performance benchmarking。",
        "action_items": [{"task": "Write the internationalization specification",
                          "owner": "Alexander Hamilton", "due": "2024-05-22"}],
    }
    pdf = pool.convert(render_docx(template, validate_form(template, form), "N-1"))
    text = pdf_text(pdf)
    for word in ("internationalization", "reconciliation", "observability", "benchmarking",
                 "specification", "Hamilton"):
        assert word in text, word


@pytest.mark.parametrize("key", TEMPLATE_KEYS)
def test_documents_declare_chinese_and_embed_sc_faces(pool, key):
    template = get_template(key)
    pdf = pool.convert(render_docx(template, validate_form(template, example(key)), "N-1"))
    catalog = PdfReader(io.BytesIO(pdf)).trailer["/Root"]
    assert catalog["/Lang"] == "zh-CN"
    names = subprocess.run(["pdffonts", "-"], input=pdf, capture_output=True,
                           check=True).stdout.decode()
    cjk = [line.split()[0] for line in names.splitlines()[2:] if "CJK" in line]
    assert cjk and all("CJKsc-" in name for name in cjk), cjk


def test_an_extracted_face_is_named_after_its_region():
    from pipeline.render.fonts import extract_face

    collection = Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc").read_bytes()
    face = extract_face(collection, "NotoSansCJKsc-Bold")
    from fontTools.ttLib import TTFont

    font = TTFont(io.BytesIO(face))
    assert font["name"].getDebugName(6) == "NotoSansCJKsc-Bold"
    assert font["CFF "].cff.fontNames == ["NotoSansCJKsc-Bold"]
    assert all("CJKsc-" in fd.FontName for fd in font["CFF "].cff.topDictIndex[0].FDArray)


def test_each_face_comes_as_everyday_primary_and_full_fallback():
    from fontTools.ttLib import TTFont

    from pipeline.render.fonts import (
        FALLBACK_SUFFIX,
        _face_tables,
        common_characters,
        primary_and_fallback,
    )

    collection = Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc").read_bytes()
    primary, fallback = (TTFont(io.BytesIO(face)) for face in primary_and_fallback(
        _face_tables(collection, "NotoSansCJKsc-Regular"), "Noto Sans CJK SC"))
    assert set(primary.getBestCmap()) <= common_characters()
    assert {ord("的"), ord("（"), ord("A"), ord("①")} <= set(primary.getBestCmap())
    assert len(fallback.getBestCmap()) > 40000
    assert primary["name"].getDebugName(1) == "Noto Sans CJK SC"
    assert fallback["name"].getDebugName(1) == f"Noto Sans CJK SC{FALLBACK_SUFFIX}"
    # Same glyphs, same PostScript name: the PDF names either face the same way.
    for face in (primary, fallback):
        assert face["name"].getDebugName(6) == "NotoSansCJKsc-Regular"
        assert face["maxp"].numGlyphs == 65535
    assert primary.getBestCmap()[ord("的")] == fallback.getBestCmap()[ord("的")]
