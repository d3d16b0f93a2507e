"""Whether a .docx is safe to hand to LibreOffice: a sound archive, not oversized, with no
external part that would make the converter reach out to the network."""

from __future__ import annotations

import io
import zipfile
from xml.etree import ElementTree

from pipeline.errors import NotADocx

MAX_DOCX_BYTES = 50 * 1024 * 1024
MAX_DOCX_UNPACKED = 400 * 1024 * 1024
HYPERLINK_REL = (
    "http://schemas.openxmlformats.org/officeDocument/2006/relationships/hyperlink"
)


def check_docx(data: bytes) -> None:
    """Raise NotADocx unless ``data`` is a .docx LibreOffice may safely open.

    Checks: a ZIP archive, not oversized when unpacked, with a parseable
    ``word/document.xml``, and no external part (linked image, template, OLE object)
    that would make the converter reach out to the network.
    """
    if len(data) > MAX_DOCX_BYTES:
        raise NotADocx(f"文档过大（{len(data)} 字节）", f"document too large ({len(data)} bytes)")
    if not data.startswith(b"PK"):
        raise NotADocx("不是 .docx 文件（不是 ZIP 压缩包）", "not a .docx file (not a ZIP archive)")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = archive.namelist()
            if sum(info.file_size for info in archive.infolist()) > MAX_DOCX_UNPACKED:
                raise NotADocx("文档解压后过大", "document is too large when unpacked")
            if "word/document.xml" not in names:
                raise NotADocx("不是 Word 文档（缺少 word/document.xml）",
                               "not a Word document (no word/document.xml)")
            ElementTree.fromstring(archive.read("word/document.xml"))
            for name in names:
                if name.endswith(".rels"):
                    _refuse_external_parts(name, archive.read(name))
    except NotADocx:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, KeyError) as exc:
        raise NotADocx(f".docx 文件已损坏：{exc}", f"corrupt .docx: {exc}") from None
    except ElementTree.ParseError as exc:
        raise NotADocx(f".docx 正文 XML 损坏：{exc}",
                       f"corrupt .docx: document.xml is not well-formed: {exc}") from None


def _refuse_external_parts(name: str, xml: bytes) -> None:
    try:
        root = ElementTree.fromstring(xml)
    except ElementTree.ParseError as exc:
        raise NotADocx(f".docx 关系文件 {name} 损坏",
                       f"corrupt relationships {name}: {exc}") from None
    for rel in root:
        if rel.get("TargetMode") == "External" and rel.get("Type") != HYPERLINK_REL:
            raise NotADocx(
                f"文档引用了外部资源 {rel.get('Target')!r}，转换时不允许联网",
                f"document links an external resource {rel.get('Target')!r}; "
                "conversion never fetches from the network")


