"""The CJK font used in signature appearances, and the small fonts stamps are set in.

Debian ships Noto CJK as a TrueType collection, which pyHanko's font engine cannot open. The
Simplified Chinese face is copied out of the collection once into a standalone OpenType file,
without the tables a stamp never uses (OpenType layout, vertical metrics).

pyHanko subsets the font of every stamp it draws: on the 16 MB face that is ~0.9 s of
fontTools work per signature. A stamp needs a few dozen glyphs, so each stamp is set in a
font of exactly its characters plus printable ASCII (digits, Latin, punctuation: the
date-time and the English half), made once per set of characters and kept on disk and in
memory. Names, departments and reasons repeat, so nearly every signature finds its font
made; an unseen character costs one subset of the face (~0.2 s), and a character the face
lacks falls back to its .notdef glyph as before.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from fontTools import subset
from fontTools.ttLib import TTCollection, TTFont
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.font.opentype import (
    CIDFontType0,
    GlyphAccumulator,
    GlyphAccumulatorFactory,
)
from pyhanko.pdf_utils.generic import pdf_name
from pyhanko.pdf_utils.writer import BasePdfFileWriter

from signing.files import write_atomic

NOTO_SANS_CJK = Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")
SC_FACE_NAME = "NotoSansCJKsc-Regular"
# Bump when the face's preparation or the subsets' options change: old files are not reused.
FONT_VERSION = 2
UNUSED_TABLES = ("GSUB", "GPOS", "GDEF", "BASE", "JSTF", "VORG", "vhea", "vmtx", "DSIG")
ASCII = "".join(chr(code) for code in range(0x20, 0x7F))


def stamp_font(cache_dir: Path) -> Path:
    """Return the path of the Simplified Chinese stamp face, extracting it on first use."""
    target = cache_dir / f"{SC_FACE_NAME}-stamp{FONT_VERSION}.otf"
    if target.is_file():
        return target
    collection = TTCollection(str(NOTO_SANS_CJK))
    for face in collection.fonts:
        if face["name"].getDebugName(6) == SC_FACE_NAME:
            for tag in UNUSED_TABLES:
                if tag in face:
                    del face[tag]
            buffer = io.BytesIO()
            face.save(buffer)
            return write_atomic(target, buffer.getvalue())
    raise FileNotFoundError(f"{SC_FACE_NAME} not found in {NOTO_SANS_CJK}")


def stamp_subset(face: Path, text: str) -> Path:
    """Return a font with the glyphs of ``text`` and printable ASCII, cut from ``face``.

    Made once per set of characters: kept beside ``face`` (named by a hash of the face and
    the characters) and remembered by this process.
    """
    extra = "".join(sorted(set(text) - set(ASCII) - {"\n", "\r", "\t"}))
    path = _subset(face, extra)
    if not path.is_file():  # removed behind this process's back: make it again
        _subset.cache_clear()
        path = _subset(face, extra)
    return path


@lru_cache(maxsize=1024)
def _subset(face: Path, characters: str) -> Path:
    stat = face.stat()
    key = hashlib.sha256(
        f"{FONT_VERSION}\0{face.name}\0{stat.st_size}\0{characters}".encode()).hexdigest()
    target = face.parent / "stamp-subsets" / f"{key[:40]}.otf"
    if target.is_file():
        return target
    font = TTFont(str(face))
    options = subset.Options(layout_closure=False, name_IDs=["*"], notdef_outline=True,
                             glyph_names=False)
    options.drop_tables += list(UNUSED_TABLES)
    subsetter = subset.Subsetter(options=options)
    subsetter.populate(unicodes=[ord(char) for char in ASCII + characters])
    subsetter.subset(font)
    buffer = io.BytesIO()
    font.save(buffer)
    return write_atomic(target, buffer.getvalue())


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
