"""The LibreOffice pool, end to end with real soffice processes."""

from __future__ import annotations

import http.server
import os
import re
import signal
import subprocess
import threading
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from io import BytesIO
from pathlib import Path

import pytest
from fontTools.t1Lib import T1Font
from fontTools.ttLib import TTCollection
from pypdf import PdfReader

from pipeline.errors import ConversionError, ConversionTimeout, NotADocx
from pipeline.forms.manifest import get_template
from pipeline.forms.validate import validate_form
from pipeline.render.docx import render_docx
from pipeline.render.fonts import common_characters
from pipeline.render.libreoffice import ConverterPool, PoolSpec, Worker, check_docx
from pipeline.render.office_profile import PROFILE_SETTINGS
from tests.support.docx_samples import PNG, linked_image_docx, plain_docx
from tests.support.forms import TEMPLATE_KEYS, example
from tests.support.pdf import pdf_text

pytestmark = pytest.mark.slow  # real soffice processes

SERIF_TTC = "/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc"


def rendered(key: str, number: str = "2024-测试-001") -> bytes:
    template = get_template(key)
    return render_docx(template, validate_form(template, example(key)), number)


def embedded_fonts(pdf: bytes) -> list[dict]:
    """Return every font dictionary used on any page, descendants resolved."""
    fonts = []
    for page in PdfReader(BytesIO(pdf)).pages:
        for ref in page["/Resources"]["/Font"].values():
            font = ref.get_object()
            if "/DescendantFonts" in font:
                font = font["/DescendantFonts"][0].get_object()
            fonts.append(font)
    return fonts


def embedded_glyphs(pdf: bytes) -> dict[str, set[str]]:
    """Return the glyph names of each embedded Type 1 font, by its name in the PDF. The
    names keep the CIDs of the face they were cut from, so they tell which face was used."""
    glyphs: dict[str, set[str]] = {}
    for font in embedded_fonts(pdf):
        program = font["/FontDescriptor"].get_object().get("/FontFile")
        if program is None:
            continue
        path = Path(os.environ.get("TMPDIR", "/tmp")) / f"font-{os.getpid()}.pfa"
        path.write_bytes(program.get_object().get_data())
        t1 = T1Font(str(path))
        t1.parse()
        glyphs[str(font["/BaseFont"])[1:]] = set(t1.font["CharStrings"].keys())
        path.unlink()
    return glyphs


@pytest.mark.parametrize("key", TEMPLATE_KEYS)
def test_pdf_a_2b_with_every_font_embedded_and_cjk_text(pool, key):
    pdf = pool.convert(rendered(key))
    reader = PdfReader(BytesIO(pdf))
    xmp = reader.trailer["/Root"]["/Metadata"].get_object().get_data().decode()
    assert re.search(r"<pdfaid:part>2</pdfaid:part>", xmp)
    assert re.search(r"<pdfaid:conformance>B</pdfaid:conformance>", xmp)
    fonts = embedded_fonts(pdf)
    assert fonts
    for font in fonts:
        descriptor = font["/FontDescriptor"].get_object()
        assert any(k in descriptor for k in ("/FontFile", "/FontFile2", "/FontFile3")), font
    text = pdf_text(pdf)
    title = get_template(key).title_zh
    assert title in text
    assert "2024-测试-001" in text
    assert "备注" in text


def test_simplified_chinese_glyphs_not_japanese(pool):
    """Noto CJK's TTC shares one glyph set; the SC face maps 骨/直/角 to other glyphs than JP.
    The glyph names in the embedded subset keep the CIDs, so they tell which face was used."""
    template = get_template("requirement_confirmation")
    form = example("requirement_confirmation") | {"background": "骨直角门"}
    pdf = pool.convert(render_docx(template, validate_form(template, form), "N-1"))
    collection = TTCollection(SERIF_TTC)
    jp, sc = (collection.fonts[i].getBestCmap() for i in (0, 2))
    distinct = [c for c in "骨直角门" if jp[ord(c)] != sc[ord(c)]]
    assert len(distinct) >= 3
    glyphs = set().union(*embedded_glyphs(pdf).values())
    for char in distinct:
        assert sc[ord(char)] in glyphs, (char, sc[ord(char)])
        assert jp[ord(char)] not in glyphs, (char, jp[ord(char)])


def test_rare_characters_come_from_the_full_face(pool):
    """The faces the documents name map everyday characters only; a rarer one (not in GB
    2312) comes from the same face with its full map, the same SC glyph."""
    template = get_template("requirement_confirmation")
    rare = "堃喆玥珺祎㐀龘"
    assert not set(map(ord, rare)) & common_characters()
    form = example("requirement_confirmation") | {"background": f"罕见字{rare}。"}
    pdf = pool.convert(render_docx(template, validate_form(template, form), "N-1"))
    assert f"罕见字{rare}。" in pdf_text(pdf)
    sc = TTCollection(SERIF_TTC).fonts[2].getBestCmap()
    glyphs = embedded_glyphs(pdf)
    names = {name.split("+")[-1] for name in glyphs}
    assert names == {"NotoSerifCJKsc-Regular-VKana", "NotoSerifCJKsc-Bold-VKana",
                     "NotoSansCJKsc-Bold-VKana"}, names
    cids = {int(name[3:]) for name in set().union(*glyphs.values()) if name.startswith("cid")}
    assert all(int(sc[ord(char)][3:]) in cids for char in rare)
    # The everyday text and the rare characters come from two embedded faces.
    assert sum(1 for name in glyphs if name.endswith("NotoSerifCJKsc-Regular-VKana")) == 2


def test_killed_office_during_batch_every_document_still_comes_out():
    docs = [rendered(key, f"N-{i}") for i, key in enumerate(TEMPLATE_KEYS * 4)]
    with ConverterPool(PoolSpec(size=2, timeout_s=60)) as pool:
        victim = pool.workers()[0]

        def kill_soon() -> None:
            time.sleep(0.4)
            os.killpg(victim.pid, signal.SIGKILL)

        killer = threading.Thread(target=kill_soon)
        killer.start()
        with ThreadPoolExecutor(max_workers=4) as executor:
            pdfs = list(executor.map(pool.convert, docs))
        killer.join()
        assert pool.replaced >= 1
        assert len(pdfs) == len(docs)
        for index, pdf in enumerate(pdfs):
            assert pdf.startswith(b"%PDF-")
            assert f"N-{index}" in pdf_text(pdf)


@pytest.mark.parametrize("data, message", [
    (b"", "not a .docx file"),
    (b"hello, I am plain text", "not a .docx file"),
    (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n", "not a .docx file"),
    (b"PK\x03\x04" + b"\x00" * 40, "corrupt .docx"),
])
def test_non_docx_gives_a_clear_error(pool, data, message):
    with pytest.raises(NotADocx) as caught:
        pool.convert(data)
    assert message in str(caught.value)


def test_corrupt_docx_gives_a_clear_error(pool):
    good = rendered("issue_tracking")
    truncated = good[: len(good) // 2]
    with pytest.raises(NotADocx, match="corrupt .docx"):
        pool.convert(truncated)
    broken = BytesIO()
    with zipfile.ZipFile(BytesIO(good)) as src, zipfile.ZipFile(broken, "w") as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename == "word/document.xml":
                data = data[: len(data) // 2]
            dst.writestr(item, data)
    with pytest.raises(NotADocx, match="document.xml is not well-formed"):
        pool.convert(broken.getvalue())
    assert pool.convert(good).startswith(b"%PDF-")


def test_timeout_cuts_off_and_pool_keeps_working():
    heavy = plain_docx(*[f"第 {i} 段：" + "长文本" * 80 for i in range(4000)])
    with ConverterPool(PoolSpec(size=1, timeout_s=60)) as pool:
        first_pid = pool.workers()[0].pid
        started = time.monotonic()
        with pytest.raises(ConversionTimeout, match="timed out after 0.5 s"):
            pool.convert(heavy, timeout=0.5)
        assert time.monotonic() - started < 5
        pdf = pool.convert(rendered("progress_sync"))
        assert "跨部门进度同步表" in pdf_text(pdf)
        assert pool.replaced == 1
        assert pool.workers()[0].pid != first_pid


def test_workers_start_from_a_prepared_profile_that_keeps_the_settings(tmp_path):
    spec = PoolSpec(size=1, profile_cache=tmp_path / "cache")
    with ConverterPool(spec) as pool:
        assert "2024-测试-001" in pdf_text(pool.convert(rendered("requirement_confirmation")))
    (seed,) = (tmp_path / "cache").iterdir()
    settings = [f'<item oor:path="/{path}"><prop oor:name="{name}" oor:op="fuse">'
                f"<value>{value}</value>" for path, name, value in PROFILE_SETTINGS]
    xcu = (seed / "user" / "registrymodifications.xcu").read_text(encoding="utf-8")
    assert all(setting in xcu for setting in settings)  # macros off, links blocked
    with ConverterPool(spec) as pool:  # the next pool copies it
        profile = pool.workers()[0].home / "profile" / "user"
        xcu = (profile / "registrymodifications.xcu").read_text(encoding="utf-8")
        assert all(setting in xcu for setting in settings)
        assert "2024-测试-002" in pdf_text(pool.convert(rendered("progress_sync",
                                                                   "2024-测试-002")))
    assert [path.name for path in (tmp_path / "cache").iterdir()] == [seed.name]


def test_workers_skip_the_graphics_self_tests(tmp_path):
    """LibreOffice runs its graphics self-tests (and logs them in the profile) at every start
    unless the profile records that this version has run in it; headless, it never does."""
    for spec in (PoolSpec(size=1), PoolSpec(size=1, profile_cache=tmp_path / "cache")):
        with ConverterPool(spec) as pool:
            assert "2024-测试-001" in pdf_text(pool.convert(rendered("requirement_confirmation")))
            user = pool.workers()[0].home / "profile" / "user"
            xcu = (user / "registrymodifications.xcu").read_text(encoding="utf-8")
            assert '<prop oor:name="ooSetupLastVersion"' in xcu
            assert not (user / "GraphicsRenderTests.log").exists()


def test_worker_is_recycled_after_n_conversions():
    with ConverterPool(PoolSpec(size=1, recycle_after=2)) as pool:
        pids = set()
        for _ in range(5):
            pids.add(pool.workers()[0].pid)
            pool.convert(rendered("requirement_confirmation"))
        assert pool.replaced >= 2
        assert len(pids) >= 2


def test_a_pool_closed_before_it_started_starts_no_office():
    """The service closes its pool on shutdown while a background thread may not have
    started it yet: starting it then must not leave LibreOffice running."""
    pool = ConverterPool(PoolSpec(size=1))
    pool.close()
    try:
        with pytest.raises(ConversionError, match="closed"):
            pool.start()
        assert [w.pid for w in pool.workers() if w.alive()] == []
    finally:
        pool.close()


class _Recorder(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self.hits.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.end_headers()
        self.wfile.write(PNG)

    def log_message(self, *args: object) -> None:
        pass


def test_linked_resources_are_never_fetched(tmp_path):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/tracker.png"
        docx = linked_image_docx(url)
        (tmp_path / "in.docx").write_bytes(docx)

        # The pool refuses such a document before LibreOffice sees it…
        with pytest.raises(NotADocx, match="external resource"):
            check_docx(docx)

        # …and even a worker handed it directly does not fetch the link,
        worker = Worker(PoolSpec(), tmp_path, 0)
        worker.start()
        try:
            pdf = worker.convert(docx, 60)
        finally:
            worker.stop()
        assert pdf.startswith(b"%PDF-")
        time.sleep(0.5)
        assert _Recorder.hits == []

        # …whereas LibreOffice with a default profile does (the sample really links out).
        profile = f"-env:UserInstallation={(tmp_path / 'p').as_uri()}"
        subprocess.run(["soffice", "--headless", profile, "--convert-to", "pdf",
                        "--outdir", str(tmp_path / "plain"), str(tmp_path / "in.docx")],
                       capture_output=True, timeout=120)
        assert _Recorder.hits == ["/tracker.png"]
    finally:
        server.shutdown()
