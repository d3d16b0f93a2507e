"""Signature fields: found in the rendered PDF by their markers, added empty before the first
signature, one per role member, each locking itself once signed.

A template's signature cell carries a white 1 pt marker ``[[sig:ROLE]]`` (``[[sig:ROLE:N]]``
for the N-th member of a parallel group) at its top-left corner. The field fills the cell
inside its drawn borders (never on them); a cell without borders gets a box of the default
size below and to the right of the marker.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass

from pdfminer.high_level import extract_pages
from pdfminer.layout import LAParams, LTLine, LTRect, LTTextContainer, LTTextLine
from pdfminer.pdfparser import PDFSyntaxError
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.fields import (
    FieldMDPAction,
    FieldMDPSpec,
    SigFieldSpec,
    append_signature_field,
    enumerate_sig_fields,
)

from signing.errors import NotAPdf, SignatureFieldError

MARKER = re.compile(r"\[\[sig:([a-z_]+)(?::(\d+))?\]\]")
# A cell without drawn borders: a box this size below and right of the marker.
FIELD_WIDTH = 128.0
FIELD_HEIGHT = 46.0
# Distance kept from a cell's border lines, so a stamp never covers one.
BORDER_GAP = 2.0
# A border is a line (or a rectangle this thin); a field smaller than this is not a cell.
RULE_THICKNESS = 1.5
MIN_FIELD = (40.0, 20.0)


@dataclass(frozen=True)
class SignaturePlace:
    """Where one role member signs: the field name, the page (0-based) and the box."""

    field: str
    role: str
    member: int | None
    page: int
    box: tuple[float, float, float, float]


def field_name(role: str, member: int | None) -> str:
    """Return the signature field name of a role member: ``receiver``, ``supporter-2``."""
    return role if member is None else f"{role}-{member}"


def _lines(container):
    for item in container:
        if isinstance(item, LTTextLine):
            yield item
        elif isinstance(item, LTTextContainer):
            yield from _lines(item)


def _rules(page) -> tuple[list[tuple[float, float, float]], list[tuple[float, float, float]]]:
    """Return the page's horizontal rules (y, x from, x to) and vertical ones (x, y from,
    y to): drawn lines, and rectangles thin enough to be lines."""
    horizontal, vertical = [], []
    for item in page:
        if not isinstance(item, LTLine | LTRect):
            continue
        x0, y0, x1, y1 = item.bbox
        if y1 - y0 <= RULE_THICKNESS and x1 - x0 > RULE_THICKNESS:
            horizontal.append(((y0 + y1) / 2, x0, x1))
        elif x1 - x0 <= RULE_THICKNESS and y1 - y0 > RULE_THICKNESS:
            vertical.append(((x0 + x1) / 2, y0, y1))
    return horizontal, vertical


def cell_box(page, x: float, y: float) -> tuple[float, float, float, float] | None:
    """Return the box inside the borders of the table cell around (x, y), kept
    BORDER_GAP away from them, or None when no bordered cell encloses the point."""
    horizontal, vertical = _rules(page)
    crossing_x = [rule for rule in horizontal if rule[1] - 1 <= x <= rule[2] + 1]
    crossing_y = [rule for rule in vertical if rule[1] - 1 <= y <= rule[2] + 1]
    top = min((r[0] for r in crossing_x if r[0] > y), default=None)
    bottom = max((r[0] for r in crossing_x if r[0] < y), default=None)
    left = max((r[0] for r in crossing_y if r[0] < x), default=None)
    right = min((r[0] for r in crossing_y if r[0] > x), default=None)
    if None in (top, bottom, left, right):
        return None
    box = (left + BORDER_GAP, bottom + BORDER_GAP, right - BORDER_GAP, top - BORDER_GAP)
    if box[2] - box[0] < MIN_FIELD[0] or box[3] - box[1] < MIN_FIELD[1]:
        return None
    return box


def find_signature_places(pdf: bytes) -> list[SignaturePlace]:
    """Return every signature place marked in ``pdf``, in document order."""
    places = []
    try:
        pages = list(extract_pages(io.BytesIO(pdf), laparams=LAParams(char_margin=0.5)))
    except (PDFSyntaxError, ValueError, TypeError, KeyError) as exc:
        raise NotAPdf(f"无法读取 PDF：{exc}", f"cannot read the PDF: {exc}") from None
    for page_index, page in enumerate(pages):
        for line in _lines(page):
            for match in MARKER.finditer(line.get_text()):
                x0, y0, _, top = line.bbox
                role, member = match.group(1), match.group(2)
                number = int(member) if member else None
                box = cell_box(page, x0 + 0.5, (y0 + top) / 2) or (
                    x0 - 3, top - FIELD_HEIGHT, x0 - 3 + FIELD_WIDTH, top + 1)
                places.append(SignaturePlace(
                    field=field_name(role, number), role=role, member=number, page=page_index,
                    box=box))
    return places


def prepare_fields(pdf: bytes, places: list[SignaturePlace]) -> bytes:
    """Return ``pdf`` with one empty signature field per place, as an incremental update.

    Each field carries a /Lock dictionary on itself, so once signed, a change to it by a
    later revision is a modification that validation reports.
    """
    names = [place.field for place in places]
    if len(set(names)) != len(names):
        raise SignatureFieldError("签字位重复", f"duplicate signature places: {names}")
    try:
        writer = IncrementalPdfFileWriter(io.BytesIO(pdf), strict=False)
    except (PdfError, ValueError, OSError) as exc:
        raise NotAPdf(f"无法读取 PDF：{exc}", f"cannot read the PDF: {exc}") from None
    for place in places:
        append_signature_field(writer, SigFieldSpec(
            sig_field_name=place.field, on_page=place.page, box=place.box,
            field_mdp_spec=FieldMDPSpec(FieldMDPAction.INCLUDE, fields=[place.field]),
        ))
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def signature_fields(pdf: bytes) -> dict[str, bool]:
    """Return every signature field of ``pdf``: name → already signed."""
    reader = PdfFileReader(io.BytesIO(pdf), strict=False)
    return {name: value is not None
            for name, value, _ in enumerate_sig_fields(reader, filled_status=None)}
