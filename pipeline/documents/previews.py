"""Page previews: PNG images of a document's current revision, rendered once by poppler, sharp
enough to read a stamp when the page zooms to twice its width."""

from __future__ import annotations

import io
import subprocess
import tempfile
from pathlib import Path

from pypdf import PdfReader

from pipeline.config import Settings
from pipeline.documents.repository import load_state, revision_store
from pipeline.errors import BadInput, OperationFailed
from pipeline.record.files import write_atomic

PREVIEW_DPI = 120


def page_count(settings: Settings, document_id: str) -> int:
    """Return how many pages the document's current revision has."""
    state = load_state(settings, document_id)
    return len(PdfReader(io.BytesIO(revision_store(settings).get(state.head_revision))).pages)


def page_preview(settings: Settings, document_id: str, page: int) -> bytes:
    """Return page ``page`` (1-based) of the current revision as a PNG (cached per revision)."""
    state = load_state(settings, document_id)
    cached = settings.data_dir / "previews" / f"{state.head_revision}-{page}-{PREVIEW_DPI}.png"
    if cached.is_file():
        return cached.read_bytes()
    if not 1 <= page <= page_count(settings, document_id):
        raise BadInput(f"没有第 {page} 页", f"there is no page {page}")
    with tempfile.TemporaryDirectory() as scratch:
        pdf = Path(scratch, "doc.pdf")
        pdf.write_bytes(revision_store(settings).get(state.head_revision))
        result = subprocess.run(["pdftoppm", "-png", "-r", str(PREVIEW_DPI), "-f", str(page), "-l",
                                 str(page), "-singlefile", str(pdf), str(Path(scratch, "p"))],
                                capture_output=True, timeout=60)
        if result.returncode != 0:
            raise OperationFailed("无法生成页面预览", "could not render the page preview")
        image = Path(scratch, "p.png").read_bytes()
    write_atomic(cached, image)
    return image
