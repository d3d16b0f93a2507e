"""The CJK faces LibreOffice embeds, under their Simplified Chinese names.

Debian ships Noto CJK as TrueType collections whose faces (JP, KR, SC, TC, HK) share one CFF
table, and that table is named after the first face: LibreOffice embeds the Simplified
Chinese glyphs it selects through the SC face, but under the name ``NotoSerifCJKjp-…``. So
the SC face of each collection the templates use is copied out once into a standalone
OpenType file whose CFF names say SC (a same-length byte rename: no offset moves), and the
LibreOffice workers get a fontconfig file that puts those files in place of the collections.
"""

from __future__ import annotations

import os
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path

from signing.files import write_atomic

NOTO_DIR = Path("/usr/share/fonts/opentype/noto")
# (collection, the face's PostScript name): the faces the templates use.
SC_FACES = (
    ("NotoSerifCJK-Regular.ttc", "NotoSerifCJKsc-Regular"),
    ("NotoSerifCJK-Bold.ttc", "NotoSerifCJKsc-Bold"),
    ("NotoSansCJK-Regular.ttc", "NotoSansCJKsc-Regular"),
    ("NotoSansCJK-Bold.ttc", "NotoSansCJKsc-Bold"),
)
FONTS_CONF = """<?xml version="1.0"?>
<!DOCTYPE fontconfig SYSTEM "urn:fontconfig:fonts.dtd">
<fontconfig>
  <include ignore_missing="yes">/etc/fonts/fonts.conf</include>
  <dir>{folder}</dir>
  <cachedir>{folder}/cache</cachedir>
  <selectfont><rejectfont>
{rejected}  </rejectfont></selectfont>
</fontconfig>
"""


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


def default_fonts_dir() -> Path:
    """Return the per-user folder the extracted faces are kept in between runs."""
    return Path(tempfile.gettempdir()) / f"countersign-fonts-{os.getuid()}"


def fontconfig_file(folder: Path | None = None, source: Path = NOTO_DIR) -> Path | None:
    """Return a fontconfig file that gives LibreOffice the SC faces under SC names,
    extracting them into ``folder`` on first use; None when the collections are missing
    (LibreOffice then uses the system's fonts as they are)."""
    folder = folder or default_fonts_dir()
    present = [(name, face) for name, face in SC_FACES if (source / name).is_file()]
    if not present:
        return None
    folder.mkdir(parents=True, exist_ok=True)
    for collection, face in present:
        target = folder / f"{face}.otf"
        if not target.is_file():
            write_atomic(target, extract_face((source / collection).read_bytes(), face))
    rejected = "".join(f"    <glob>{source / name}</glob>\n" for name, _ in present)
    conf = folder / "fonts.conf"
    text = FONTS_CONF.format(folder=folder, rejected=rejected)
    if not conf.is_file() or conf.read_text(encoding="utf-8") != text:
        write_atomic(conf, text.encode("utf-8"))
    return conf

