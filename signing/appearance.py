"""The visible stamp of a signature, drawn the way a Chinese office expects a 签章: the
department's name around a red ring with a star, the signer's name inside it, and beside the
seal the signer, the date and time of signing and the reason, all at a legible size
(never under 7 pt), set in the embedded Noto Sans CJK SC face.

The whole drawing is :func:`draw_stamp`; the font comes from the style's font factory, so
how the font is loaded and cached stays in ``signing/fonts.py`` and the callers. A stamp is
set in a font of just its own characters (:func:`signing.fonts.stamp_subset`), embedded as
it was made (:class:`StampFontFactory`): no fontTools work per signature.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path

from fontTools.ttLib import TTFont
from pyhanko.pdf_utils import generic, layout
from pyhanko.pdf_utils.content import ResourceType
from pyhanko.pdf_utils.font import FontEngine, FontEngineFactory
from pyhanko.pdf_utils.font.opentype import (
    CIDFontType0,
    GlyphAccumulator,
    GlyphAccumulatorFactory,
)
from pyhanko.pdf_utils.generic import pdf_name
from pyhanko.pdf_utils.images import PdfImage
from pyhanko.pdf_utils.writer import BasePdfFileWriter
from pyhanko.stamp import BaseStamp, BaseStampStyle

SEAL_RED = (0.80, 0.07, 0.07)
TEXT_COLOUR = (0.10, 0.10, 0.10)
NOTE_COLOUR = (0.35, 0.35, 0.35)
MIN_TEXT_PT = 7.0  # legible when printed
FONT_RESOURCE = "F1"


@dataclass(frozen=True)
class Stamp:
    """What a signature shows."""

    name: str
    dept: str
    reason: str
    signed_at: datetime
    seal_image: Path | None = None

    def text_params(self) -> dict[str, str]:
        """Return the stamp's texts: name, dept, reason, and the signing time as
        ``signed_at`` (date, time and zone), ``date``, ``time`` and ``zone``."""
        offset = self.signed_at.strftime("%z")
        zone = f"UTC{offset[:3]}:{offset[3:]}" if offset else "UTC"
        return {
            "name": self.name,
            "dept": self.dept,
            "signed_at": f"{self.signed_at:%Y-%m-%d %H:%M:%S} ({zone})",
            "date": f"{self.signed_at:%Y-%m-%d}",
            "time": f"{self.signed_at:%H:%M:%S}",
            "zone": zone,
            "reason": self.reason,
        }

    def characters(self) -> str:
        """Return every character the stamp shows (the font it is set in needs them)."""
        return "".join(self.text_params().values())


@dataclass(frozen=True)
class SealStampStyle(BaseStampStyle):
    """A seal on the left of the field, the signer's details on its right. With a
    ``background`` (a scanned seal image), the image takes the drawn seal's place."""

    font: FontEngineFactory | None = None

    def create_stamp(self, writer: BasePdfFileWriter, box: layout.BoxConstraints,
                     text_params: dict) -> SealStamp:
        return SealStamp(writer, self, box, text_params)


class SealStamp(BaseStamp):
    def __init__(self, writer: BasePdfFileWriter, style: SealStampStyle,
                 box: layout.BoxConstraints, text_params: dict) -> None:
        super().__init__(writer=writer, style=style, box=box)
        self.text_params = text_params

    def _render_inner_content(self) -> list[bytes]:
        engine = self.style.font.create_font_engine(self.writer)
        self.set_resource(ResourceType.FONT, pdf_name(f"/{FONT_RESOURCE}"),
                          engine.as_resource())
        return [draw_stamp(engine, self.box.width, self.box.height, self.text_params,
                           seal=self.style.background is None)]


# --- drawing --------------------------------------------------------------------------------


def _rgb(colour: tuple[float, float, float], stroke: bool = False) -> bytes:
    return b"%.3f %.3f %.3f %s" % (*colour, b"RG" if stroke else b"rg")


def _width(engine: FontEngine, text: str, size: float) -> float:
    engine.font_size = size
    return engine.shape(text, with_actual_text=False).x_advance * size


def _text(engine: FontEngine, text: str, size: float, x: float, y: float, *,
          angle: float = 0.0, squeeze: float = 100.0) -> bytes:
    """Return the operators showing ``text`` with its baseline origin at (x, y), turned by
    ``angle`` radians, horizontally scaled to ``squeeze`` per cent."""
    engine.font_size = size
    shaped = engine.shape(text)
    cos, sin = math.cos(angle), math.sin(angle)
    return (b"BT /%s %.2f Tf %.1f Tz %.4f %.4f %.4f %.4f %.2f %.2f Tm %s ET"
            % (FONT_RESOURCE.encode(), size, squeeze, cos, sin, -sin, cos, x, y,
               shaped.graphics_ops))


def _fitted(engine: FontEngine, text: str, size: float, room: float) -> tuple[float, float]:
    """Return (size, horizontal scale %) that fits ``text`` into ``room`` points: the size
    shrinks down to MIN_TEXT_PT, then the glyphs are narrowed instead."""
    natural = _width(engine, text, size)
    if natural <= room:
        return size, 100.0
    smaller = max(MIN_TEXT_PT, size * room / natural)
    width = _width(engine, text, smaller)
    return smaller, min(100.0, 100.0 * room / width) if width else 100.0


def _star(cx: float, cy: float, radius: float) -> bytes:
    points = []
    for index in range(10):
        r = radius if index % 2 == 0 else radius * 0.382
        angle = math.pi / 2 + index * math.pi / 5
        points.append((cx + r * math.cos(angle), cy + r * math.sin(angle)))
    path = b"%.2f %.2f m " % points[0] + b" ".join(b"%.2f %.2f l" % p for p in points[1:])
    return path + b" h f"


def _ring_text(engine: FontEngine, text: str, cx: float, cy: float, outer: float,
               size: float) -> list[bytes]:
    """Return ``text`` set clockwise along the top of the ring whose inside is ``outer``
    from the centre, centred on the top, the glyphs standing outwards. A long name is set
    smaller (down to MIN_TEXT_PT), then narrower, so that it keeps to the upper 220°."""
    while True:
        radius = outer - size * 0.88  # the baseline: glyph tops just inside the ring
        advances = [_width(engine, char, size) for char in text]
        spacing = size * 0.12
        total = sum(advances) + spacing * (len(text) - 1)
        most = radius * math.radians(220)
        if total <= most or size <= MIN_TEXT_PT:
            break
        size = max(MIN_TEXT_PT, size - 0.5)
    # A seal's name takes a wide arc: about 36° a character.
    least = radius * math.radians(min(200, 36 * len(text)))
    squeeze = 100.0
    if total > most:
        squeeze = 100.0 * most / total
        advances = [a * squeeze / 100 for a in advances]
        spacing *= squeeze / 100
        total = most
    elif total < least and len(text) > 1:  # a short name spreads over the arc
        spacing += (least - total) / (len(text) - 1)
        total = least
    ops = []
    angle = math.pi / 2 + total / radius / 2
    for char, advance in zip(text, advances, strict=True):
        middle = angle - advance / radius / 2
        tangent = middle - math.pi / 2
        x = cx + radius * math.cos(middle) - advance / 2 * math.cos(tangent)
        y = cy + radius * math.sin(middle) - advance / 2 * math.sin(tangent)
        ops.append(_text(engine, char, size, x, y, angle=tangent, squeeze=squeeze))
        angle -= (advance + spacing) / radius
    return ops


def draw_stamp(engine: FontEngine, width: float, height: float, params: dict[str, str],
               seal: bool = True) -> bytes:
    """Return the content stream of a stamp ``width`` × ``height`` points: the seal (unless
    ``seal`` is False: an image is drawn there instead) and the signer's details.

    ``params`` holds ``name``, ``dept``, ``reason`` and the signing time as ``date``,
    ``time`` and ``zone`` (see :meth:`Stamp.text_params`).
    """
    ops: list[bytes] = [b"q"]
    diameter = min(height - 2, width * 0.42)
    radius = diameter / 2
    cx, cy = 1 + radius, height / 2
    if seal:
        ring = max(1.2, radius * 0.06)
        ops += [_rgb(SEAL_RED, stroke=True), _rgb(SEAL_RED), b"%.2f w" % ring]
        # A circle from four Bézier arcs.
        k = 0.5523 * (radius - ring / 2)
        r = radius - ring / 2
        ops.append(b"%.2f %.2f m %.2f %.2f %.2f %.2f %.2f %.2f c %.2f %.2f %.2f %.2f %.2f %.2f c "
                   b"%.2f %.2f %.2f %.2f %.2f %.2f c %.2f %.2f %.2f %.2f %.2f %.2f c S"
                   % (cx + r, cy, cx + r, cy + k, cx + k, cy + r, cx, cy + r,
                      cx - k, cy + r, cx - r, cy + k, cx - r, cy,
                      cx - r, cy - k, cx - k, cy - r, cx, cy - r,
                      cx + k, cy - r, cx + r, cy - k, cx + r, cy))
        ring_size = max(MIN_TEXT_PT, min(9.0, radius * 0.30))
        ops += _ring_text(engine, params["dept"], cx, cy, radius - ring - 1.2, ring_size)
        ops.append(_star(cx, cy + radius * 0.05, radius * 0.26))
        name_size, squeeze = _fitted(engine, params["name"], max(MIN_TEXT_PT, radius * 0.30),
                                     radius * 1.3)
        name_width = _width(engine, params["name"], name_size) * squeeze / 100
        ops.append(_text(engine, params["name"], name_size, cx - name_width / 2,
                         cy - radius * 0.62, squeeze=squeeze))
    left = 1 + diameter + 5
    room = max(10.0, width - left - 2)
    reason_zh, _, reason_en = params["reason"].partition(" / ")
    lines = [
        (params["name"], 9.0, TEXT_COLOUR),
        (f"{params['date']} {params['time']} ({params['zone']})", 8.0, TEXT_COLOUR),
        (reason_zh, 8.0, TEXT_COLOUR),
        (reason_en, 7.5, NOTE_COLOUR),
    ]
    lines = [line for line in lines if line[0]]
    leading = 1.18
    block = sum(size * leading for _, size, _ in lines)
    y = height / 2 + block / 2
    for text, size, colour in lines:
        size, squeeze = _fitted(engine, text, size, room)
        y -= size * leading
        ops += [_rgb(colour), _text(engine, text, size, left, y + size * 0.2, squeeze=squeeze)]
    ops.append(b"Q")
    return b" ".join(ops)


@lru_cache(maxsize=256)
def stamp_style(font_path: Path, seal_image: Path | None = None) -> SealStampStyle:
    """Return the stamp style for a font (cached: loading a seal image is not free)."""
    return SealStampStyle(
        font=StampFontFactory(str(font_path), font_size=8, bcp47_lang_code="zh-CN"),
        border_width=0,
        background=PdfImage(str(seal_image)) if seal_image else None,
        background_layout=layout.SimpleBoxLayoutRule(
            x_align=layout.AxisAlignment.ALIGN_MIN, y_align=layout.AxisAlignment.ALIGN_MID,
            margins=layout.Margins.uniform(1)),
        background_opacity=1.0,
    )


# A font this small is a stamp subset (signing/fonts.py): embedded whole, as it was compiled
# when it was made. Larger fonts are subset per stamp, as pyHanko does.
PRESET_MAX_BYTES = 256 * 1024


@dataclass(frozen=True)
class StampFontFactory(GlyphAccumulatorFactory):
    """pyHanko's font engine factory for stamp subsets: the font is embedded as it is on
    disk instead of being subset and compiled again by fontTools for every signature (a
    few tens of milliseconds of Python per stamp, for a few kilobytes more per signature)."""

    def create_font_engine(self, writer: BasePdfFileWriter, obj_stream=None
                           ) -> GlyphAccumulator:
        cff = _compiled_cff(self.font_file)
        if cff is None:
            return super().create_font_engine(writer, obj_stream)
        if obj_stream is None and writer.stream_xrefs and self.create_objstream_if_needed:
            obj_stream = writer.prepare_object_stream()
        with open(self.font_file, "rb") as handle:
            engine = _PresetGlyphAccumulator(
                writer=writer, font_handle=io.BytesIO(handle.read()), font_size=self.font_size,
                ot_script_tag=self.ot_script_tag, ot_language_tag=self.ot_language_tag,
                writing_direction=self.writing_direction,
                bcp47_lang_code=self.bcp47_lang_code, obj_stream=obj_stream)
        engine.cidfont_obj.__class__ = _PresetCIDFont
        engine.cidfont_obj.compiled = cff
        return engine


class _PresetGlyphAccumulator(GlyphAccumulator):
    def _extract_subset(self, options=None) -> None:
        """The font is a stamp's subset already."""


class _PresetCIDFont(CIDFontType0):
    compiled: bytes

    def set_font_file(self, writer: BasePdfFileWriter):
        stream = generic.StreamObject({pdf_name("/Subtype"): pdf_name("/CIDFontType0C")},
                                      stream_data=self.compiled)
        stream.compress()
        reference = writer.add_object(stream)
        self._font_descriptor[pdf_name("/FontFile3")] = reference
        return reference


@lru_cache(maxsize=256)
def _compiled_cff(path: str) -> bytes | None:
    """The CFF program of a stamp subset as stored in its file; None for other fonts."""
    if Path(path).stat().st_size > PRESET_MAX_BYTES:
        return None
    font = TTFont(path)
    if "CFF " not in font or not hasattr(font["CFF "].cff[0], "ROS"):
        return None
    return font.reader["CFF "]
