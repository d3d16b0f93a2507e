"""The visible stamp of a signature: name, department, date-time and reason, in Chinese, set
in the embedded Noto Sans CJK SC face, with an optional seal image behind the text.

The style is made per font: a stamp is set in a font of just its own characters
(:func:`signing.fonts.stamp_subset`), so pyHanko subsets a few kilobytes, not 16 MB."""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path

from fontTools.ttLib import TTFont
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.font.opentype import (
    CIDFontType0,
    GlyphAccumulator,
    GlyphAccumulatorFactory,
)
from pyhanko.pdf_utils.generic import pdf_name
from pyhanko.pdf_utils.images import PdfImage
from pyhanko.pdf_utils.text import TextBoxStyle
from pyhanko.pdf_utils.writer import BasePdfFileWriter
from pyhanko.stamp import TextStampStyle

STAMP_TEXT = "%(name)s\n%(dept)s\n%(signed_at)s\n%(reason)s"


@dataclass(frozen=True)
class Stamp:
    """What a signature shows."""

    name: str
    dept: str
    reason: str
    signed_at: datetime
    seal_image: Path | None = None

    def text_params(self) -> dict[str, str]:
        offset = self.signed_at.strftime("%z")
        zone = f"UTC{offset[:3]}:{offset[3:]}" if offset else "UTC"
        return {
            "name": self.name,
            "dept": self.dept,
            "signed_at": f"{self.signed_at:%Y-%m-%d %H:%M:%S} ({zone})",
            "reason": self.reason,
        }

    def text(self) -> str:
        """Return the text the stamp shows."""
        return STAMP_TEXT % self.text_params()


@lru_cache(maxsize=256)
def stamp_style(font_path: Path, seal_image: Path | None = None) -> TextStampStyle:
    """Return the stamp style for a font (cached: loading a seal image is not free)."""
    background = PdfImage(str(seal_image)) if seal_image else None
    return TextStampStyle(
        stamp_text=STAMP_TEXT,
        text_box_style=TextBoxStyle(
            font=StampFontFactory(str(font_path), font_size=7, bcp47_lang_code="zh-CN"),
            font_size=7, leading=9),
        border_width=1,
        background=background,
        background_opacity=0.35 if background else 1.0,
    )


# A font this small is one of the stamp subsets above: embedded whole, as it was compiled
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
