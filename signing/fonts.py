"""The CJK font used in signature appearances.

Debian ships Noto CJK as a TrueType collection, which pyHanko's font engine cannot open. The
Simplified Chinese face is copied out of the collection once into a standalone OpenType file
(pyHanko embeds only the glyphs a stamp uses).
"""

from __future__ import annotations

import io
from pathlib import Path

from fontTools.ttLib import TTCollection

from signing.files import write_atomic

NOTO_SANS_CJK = Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")
SC_FACE_NAME = "NotoSansCJKsc-Regular"


def stamp_font(cache_dir: Path) -> Path:
    """Return the path of the Simplified Chinese stamp font, extracting it on first use."""
    target = cache_dir / f"{SC_FACE_NAME}.otf"
    if target.is_file():
        return target
    collection = TTCollection(str(NOTO_SANS_CJK))
    for face in collection.fonts:
        if face["name"].getDebugName(6) == SC_FACE_NAME:
            buffer = io.BytesIO()
            face.save(buffer)
            return write_atomic(target, buffer.getvalue())
    raise FileNotFoundError(f"{SC_FACE_NAME} not found in {NOTO_SANS_CJK}")
