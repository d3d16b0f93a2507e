"""The CJK faces LibreOffice embeds, under their Simplified Chinese names.

Debian ships Noto CJK as TrueType collections whose faces (JP, KR, SC, TC, HK) share one CFF
table, and that table is named after the first face: LibreOffice embeds the Simplified
Chinese glyphs it selects through the SC face, but under the name ``NotoSerifCJKjp-…``. So
the SC face of each collection the templates use is copied out once into a standalone
OpenType file whose CFF names say SC (a same-length byte rename: no offset moves), and the
LibreOffice workers get a fontconfig file that puts those files in place of the collections.

Each SC face is given to LibreOffice twice. LibreOffice's PDF export reads the whole
character map of every font a document uses, once per document: with Noto's 44,000
characters that was a quarter of a conversion's time. So the face the documents name
(``Noto Serif CJK SC``) maps only the characters of everyday text (COMMON_BLOCKS and GB 2312,
~8,000), and the same face with its full map, under the family ``Noto Serif CJK SC Full``,
is the glyph fallback: the fontconfig file offers it first for any character the first one
lacks (a rarer name, an extension-A character), so every character still comes out in the
same design, from the same glyphs.
"""

from __future__ import annotations

import os
import struct
import tempfile
from dataclasses import dataclass
from functools import cache
from html import escape
from pathlib import Path

from signing.files import write_atomic

NOTO_DIR = Path("/usr/share/fonts/opentype/noto")
# (collection, the face's PostScript name, its family): the faces the templates use.
SC_FACES = (
    ("NotoSerifCJK-Regular.ttc", "NotoSerifCJKsc-Regular", "Noto Serif CJK SC"),
    ("NotoSerifCJK-Bold.ttc", "NotoSerifCJKsc-Bold", "Noto Serif CJK SC"),
    ("NotoSansCJK-Regular.ttc", "NotoSansCJKsc-Regular", "Noto Sans CJK SC"),
    ("NotoSansCJK-Bold.ttc", "NotoSansCJKsc-Bold", "Noto Sans CJK SC"),
)
FONTS_CONF = """<?xml version="1.0"?>
<!DOCTYPE fontconfig SYSTEM "urn:fontconfig:fonts.dtd">
<fontconfig>
  <include ignore_missing="yes">/etc/fonts/fonts.conf</include>
  <dir>{folder}</dir>
  <cachedir>{folder}/cache</cachedir>
  <selectfont><rejectfont>
{rejected}  </rejectfont></selectfont>
{fallbacks}</fontconfig>
"""
FALLBACK_ALIAS = """  <alias binding="same"><family>{family}</family>
    <accept><family>{family}{suffix}</family></accept></alias>
"""
FALLBACK_SUFFIX = " Full"
# Bumped whenever the faces written change: they live in a folder named after it.
FACES_VERSION = 2
# Besides GB 2312: Latin, general punctuation, letterlike symbols and number forms, arrows,
# mathematical operators, enclosed numbers, box drawing, shapes, miscellaneous symbols and
# dingbats, CJK symbols and punctuation, enclosed CJK letters and months, CJK compatibility
# (units such as ㎡), half- and full-width forms.
COMMON_BLOCKS = ((0x20, 0x250), (0x2000, 0x2070), (0x20A0, 0x20C0), (0x2100, 0x2200),
                 (0x2190, 0x2300), (0x2460, 0x2800), (0x3000, 0x3040), (0x3200, 0x3400),
                 (0xFE30, 0xFE50), (0xFF00, 0xFFF0))


@dataclass(frozen=True)
class _Face:
    tables: dict[bytes, tuple[int, int]]  # tag → (offset, length) in the collection


def _faces(data: bytes) -> list[_Face]:
    if data[:4] != b"ttcf":
        raise ValueError("not a TrueType collection")
    count = struct.unpack(">I", data[8:12])[0]
    faces = []
    for index in range(count):
        start = struct.unpack(">I", data[12 + 4 * index:16 + 4 * index])[0]
        tables = struct.unpack(">H", data[start + 4:start + 6])[0]
        records = {}
        for n in range(tables):
            tag, _, offset, length = struct.unpack(
                ">4sIII", data[start + 12 + 16 * n:start + 28 + 16 * n])
            records[tag] = (offset, length)
        faces.append(_Face(records))
    return faces


def _postscript_name(data: bytes, face: _Face) -> str:
    offset, _ = face.tables[b"name"]
    _, count, strings = struct.unpack(">HHH", data[offset:offset + 6])
    for n in range(count):
        platform, _, _, name_id, length, at = struct.unpack(
            ">HHHHHH", data[offset + 6 + 12 * n:offset + 18 + 12 * n])
        if name_id == 6:
            raw = data[offset + strings + at:offset + strings + at + length]
            return raw.decode("utf-16-be" if platform in (0, 3) else "latin-1")
    return ""


def _checksum(table: bytes) -> int:
    padded = table + b"\0" * (-len(table) % 4)
    return sum(struct.unpack(f">{len(padded) // 4}I", padded)) & 0xFFFFFFFF


def extract_face(collection: bytes, postscript_name: str) -> bytes:
    """Return the face ``postscript_name`` of a CFF collection as a standalone OpenType
    font whose CFF names (font, sub-fonts, family) are that face's, not the first face's."""
    return _font_file(_face_tables(collection, postscript_name))


def _face_tables(collection: bytes, postscript_name: str) -> dict[bytes, bytes]:
    """Return the tables of face ``postscript_name``, its CFF names made the face's own."""
    faces = _faces(collection)
    names = [_postscript_name(collection, face) for face in faces]
    face = faces[names.index(postscript_name)]
    first = names[0]
    region, wanted = first.split("CJK")[1][:2], postscript_name.split("CJK")[1][:2]
    tables = {tag: collection[offset:offset + length]
              for tag, (offset, length) in face.tables.items()}
    if b"CFF " in tables and region != wanted:
        cff = tables[b"CFF "]
        cff = cff.replace(f"CJK{region}-".encode(), f"CJK{wanted}-".encode())
        cff = cff.replace(f"CJK {region.upper()}".encode(), f"CJK {wanted.upper()}".encode())
        tables[b"CFF "] = cff
    return tables


def _font_file(tables: dict[bytes, bytes]) -> bytes:
    """Return an OpenType file holding ``tables``, checksums and directory computed."""
    tables = dict(tables)
    head = bytearray(tables[b"head"])
    head[8:12] = b"\0\0\0\0"
    tables[b"head"] = bytes(head)
    tags = sorted(tables)
    count = len(tags)
    power = 1 << (count.bit_length() - 1)
    header = struct.pack(">4sHHHH", b"OTTO" if b"CFF " in tables else b"\0\1\0\0", count,
                         power * 16, power.bit_length() - 1, count * 16 - power * 16)
    offset = 12 + 16 * count
    directory, body = [], []
    for tag in tags:
        table = tables[tag]
        directory.append(struct.pack(">4sIII", tag, _checksum(table), offset, len(table)))
        body.append(table + b"\0" * (-len(table) % 4))
        offset += len(body[-1])
    font = bytearray(header + b"".join(directory) + b"".join(body))
    adjustment = (0xB1B0AFBA - _checksum(bytes(font))) & 0xFFFFFFFF
    head_at = 12 + 16 * count + sum(len(b) for b in body[:tags.index(b"head")])
    font[head_at + 8:head_at + 12] = struct.pack(">I", adjustment)
    return bytes(font)


@cache
def common_characters() -> frozenset[int]:
    """Return the code points the primary faces map: COMMON_BLOCKS and all of GB 2312."""
    chars = {code for start, end in COMMON_BLOCKS for code in range(start, end)}
    for high in range(0xA1, 0xF8):
        for low in range(0xA1, 0xFF):
            try:
                chars.add(ord(bytes((high, low)).decode("gb2312")))
            except UnicodeDecodeError:
                continue
    return frozenset(chars)


def primary_and_fallback(tables: dict[bytes, bytes], family: str) -> tuple[bytes, bytes]:
    """Return (the primary face, the fallback face) made from the tables of a face of
    ``family``: the primary maps only common_characters(); the fallback maps every
    character, under the family name plus FALLBACK_SUFFIX."""
    # Imported where faces are made, once per fonts folder.
    from fontTools.ttLib import TTFont
    from fontTools.ttLib.tables._c_m_a_p import table__c_m_a_p
    from fontTools.ttLib.tables._n_a_m_e import table__n_a_m_e

    # The two tables are read and written on their own; names stand for glyph ids.
    glyphs = TTFont()
    glyphs.setGlyphOrder([f"g{gid}" for gid in range(struct.unpack(">H", tables[b"maxp"][4:6])[0])])
    cmap = table__c_m_a_p()
    cmap.decompile(tables[b"cmap"], glyphs)
    keep = common_characters()
    for subtable in cmap.tables:
        if subtable.format in (4, 12):
            subtable.cmap = {code: glyph for code, glyph in subtable.cmap.items() if code in keep}
    names = table__n_a_m_e()
    names.decompile(tables[b"name"], glyphs)
    for record in names.names:
        if record.nameID in (1, 4, 16):
            record.string = record.toUnicode().replace(family, family + FALLBACK_SUFFIX)
    primary = _font_file({**tables, b"cmap": cmap.compile(glyphs)})
    fallback = _font_file({**tables, b"name": names.compile(glyphs)})
    return primary, fallback


def default_fonts_dir() -> Path:
    """Return the per-user folder the extracted faces are kept in between runs."""
    return Path(tempfile.gettempdir()) / f"countersign-fonts-{os.getuid()}"


def fontconfig_file(folder: Path | None = None, source: Path = NOTO_DIR) -> Path | None:
    """Return a fontconfig file that gives LibreOffice the SC faces under SC names, each
    as a primary face and its glyph fallback, making them in ``folder`` on first use; None
    when the collections are missing (LibreOffice then uses the system's fonts as they are)."""
    folder = folder or default_fonts_dir()
    present = [entry for entry in SC_FACES if (source / entry[0]).is_file()]
    if not present:
        return None
    faces = folder / f"faces-{FACES_VERSION}"
    faces.mkdir(parents=True, exist_ok=True)
    for collection, face, family in present:
        primary, fallback = faces / f"{face}.otf", faces / f"{face}-full.otf"
        if not (primary.is_file() and fallback.is_file()):
            made = primary_and_fallback(_face_tables((source / collection).read_bytes(), face),
                                        family)
            write_atomic(fallback, made[1])
            write_atomic(primary, made[0])
    rejected = "".join(f"    <glob>{source / name}</glob>\n" for name, _, _ in present)
    fallbacks = "".join(FALLBACK_ALIAS.format(family=escape(family), suffix=FALLBACK_SUFFIX)
                        for family in dict.fromkeys(family for _, _, family in present))
    conf = folder / "fonts.conf"
    text = FONTS_CONF.format(folder=faces, rejected=rejected, fallbacks=fallbacks)
    if not conf.is_file() or conf.read_text(encoding="utf-8") != text:
        write_atomic(conf, text.encode("utf-8"))
    return conf
