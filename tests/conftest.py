"""Shared fixtures. The end-to-end fixtures start real LibreOffice processes."""

from __future__ import annotations

import json
import re
import socket
import subprocess
from pathlib import Path

import pytest

from pipeline.config import Settings
from pipeline.render.libreoffice import ConverterPool, PoolSpec

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
TEMPLATE_KEYS = ("requirement_confirmation", "progress_sync", "issue_tracking",
                 "meeting_minutes")


def free_port() -> int:
    """Return a loopback TCP port nobody listens on (right now)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def example(key: str) -> dict:
    """Return a fresh copy of the example form of template ``key``."""
    return json.loads((EXAMPLES / f"{key}.json").read_text(encoding="utf-8"))


def pdf_text(pdf: bytes | Path, raw: bool = False) -> str:
    """Return the text of a PDF as poppler's pdftotext extracts it.

    ``raw`` keeps content-stream order: a long cell's text is not interleaved with the
    cells beside it, as it is in reading-order layout.
    """
    args = ["pdftotext", "-enc", "UTF-8", *(["-raw"] if raw else [])]
    if isinstance(pdf, bytes):
        result = subprocess.run([*args, "-", "-"], input=pdf, capture_output=True, check=True)
    else:
        result = subprocess.run([*args, str(pdf), "-"], capture_output=True, check=True)
    return result.stdout.decode("utf-8")


# The header of the pages after the first: "<title>　<label>编号：<number>".
PAGE_HEADER = re.compile(r"^\f?\S+[ \t\u3000]+\S*编号：\S+$", re.MULTILINE)


def squash(text: str) -> str:
    """Return ``text`` without whitespace, page headers and footers (extraction re-wraps
    long lines, and a value that spans pages has them between its parts)."""
    return re.sub(r"第\d+页/共\d+页", "", "".join(PAGE_HEADER.sub("", text).split()))


@pytest.fixture(scope="session")
def pool():
    """A warm two-process LibreOffice pool shared by the end-to-end tests."""
    with ConverterPool(PoolSpec(size=2, timeout_s=60)) as shared:
        yield shared


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data")
