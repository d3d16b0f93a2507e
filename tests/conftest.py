"""Shared fixtures. The end-to-end fixtures start real LibreOffice processes."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from pipeline.config import Settings
from pipeline.conversion import ConverterPool, PoolSpec

EXAMPLES = Path(__file__).parent / "examples"
TEMPLATE_KEYS = ("requirement_confirmation", "progress_sync", "issue_tracking",
                 "meeting_minutes")


def example(key: str) -> dict:
    """Return a fresh copy of the example form of template ``key``."""
    return json.loads((EXAMPLES / f"{key}.json").read_text(encoding="utf-8"))


def pdf_text(pdf: bytes | Path, tmp_path: Path | None = None) -> str:
    """Return the text of a PDF as poppler's pdftotext extracts it."""
    if isinstance(pdf, bytes):
        result = subprocess.run(["pdftotext", "-enc", "UTF-8", "-", "-"], input=pdf,
                                capture_output=True, check=True)
    else:
        result = subprocess.run(["pdftotext", "-enc", "UTF-8", str(pdf), "-"],
                                capture_output=True, check=True)
    return result.stdout.decode("utf-8")


def squash(text: str) -> str:
    """Return ``text`` without any whitespace (PDF extraction re-wraps long lines)."""
    return "".join(text.split())


@pytest.fixture(scope="session")
def pool():
    """A warm two-process LibreOffice pool shared by the end-to-end tests."""
    with ConverterPool(PoolSpec(size=2, timeout_s=60)) as shared:
        yield shared


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data")
