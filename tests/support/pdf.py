"""PDFs for the tests: rendered from the example forms, and their text as poppler reads it."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from pipeline.forms.manifest import get_template
from pipeline.forms.validate import validate_form
from pipeline.render.docx import render_docx
from tests.support.forms import example


def rendered_pdf(pool, key: str, form: dict | None = None,
                 number: str = "2024-测试-001") -> bytes:
    """Return the PDF of template ``key`` filled with ``form`` (default: its example),
    converted by ``pool``; no ledger, no signature fields yet."""
    template = get_template(key)
    return pool.convert(render_docx(template, validate_form(template, form or example(key)),
                                    number))


def pdf_text(pdf: bytes | Path, raw: bool = False) -> str:
    """Return the text of a PDF as poppler's pdftotext extracts it.

    ``raw`` keeps content-stream order: a long cell's text is not interleaved with the
    cells beside it, as it is in reading-order layout.
    """
    args = ["pdftotext", "-enc", "UTF-8", *(["-raw"] if raw else [])]
    if isinstance(pdf, bytes):
        result = subprocess.run([*args, "-", "-"], input=pdf, capture_output=True, check=True)
    else:
        result = subprocess.run([*args, str(pdf), "-"], capture_output=True, check=True)
    return result.stdout.decode("utf-8")


# The header of the pages after the first: "<title>　<label>编号：<number>".
PAGE_HEADER = re.compile(r"^\f?\S+[ \t\u3000]+\S*编号：\S+$", re.MULTILINE)


def squash(text: str) -> str:
    """Return ``text`` without whitespace, page headers and footers (extraction re-wraps
    long lines, and a value that spans pages has them between its parts)."""
    return re.sub(r"第\d+页/共\d+页", "", "".join(PAGE_HEADER.sub("", text).split()))
