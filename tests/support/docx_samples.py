"""Hostile and unusual .docx files built by the tests themselves."""

from __future__ import annotations

import base64
import io
import re
import zipfile

from docx import Document
from docx.shared import Cm

# A 1×1 PNG.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


def linked_image_docx(url: str) -> bytes:
    """Return a .docx whose only picture is an external link to ``url``."""
    doc = Document()
    doc.add_paragraph("linked picture below")
    doc.add_picture(io.BytesIO(PNG), width=Cm(2))
    buffer = io.BytesIO()
    doc.save(buffer)
    src = zipfile.ZipFile(io.BytesIO(buffer.getvalue()))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename == "word/document.xml":
                data = data.replace(b"r:embed=", b"r:link=")
            elif item.filename == "word/_rels/document.xml.rels":
                data = re.sub(
                    rb'Target="media/image1.png"',
                    f'Target="{url}" TargetMode="External"'.encode(),
                    data,
                )
            elif item.filename.startswith("word/media/"):
                continue
            dst.writestr(item, data)
    return out.getvalue()


def plain_docx(*paragraphs: str) -> bytes:
    """Return a small valid .docx with the given paragraphs."""
    doc = Document()
    for text in paragraphs:
        doc.add_paragraph(text)
    buffer = io.BytesIO()
    doc.save(buffer)
    return buffer.getvalue()
