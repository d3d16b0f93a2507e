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
from functools import lru_cache
from pathlib import Path

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
    # fontTools is imported where a font is made, which happens once: verification imports
    # this module through the signing setup and should not pay for it.
    from fontTools.ttLib import TTCollection

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
    from fontTools import subset  # see stamp_font
    from fontTools.ttLib import TTFont

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
