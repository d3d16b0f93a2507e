"""The visible stamp of a signature: name, department, date-time and reason, in Chinese, set
in the embedded Noto Sans CJK SC face, with an optional seal image behind the text.

The style is made per font: a stamp is set in a font of just its own characters
(:func:`signing.fonts.stamp_subset`), so pyHanko subsets a few kilobytes, not 16 MB."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path

from pyhanko.pdf_utils.images import PdfImage
from pyhanko.pdf_utils.text import TextBoxStyle
from pyhanko.stamp import TextStampStyle

from signing.fonts import StampFontFactory

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
