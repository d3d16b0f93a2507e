"""Crash-safe file writing: a file is either absent or complete, never half-written."""

from __future__ import annotations

from pathlib import Path

from pipeline.record.crashpoints import crash_point
from signing.files import write_atomic as _write_atomic


def write_atomic(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (0600) and return ``path``; the crash tests can
    stop the process just before the rename (``store:before-rename``)."""
    return _write_atomic(path, data, before_rename=lambda: crash_point("store:before-rename"))
