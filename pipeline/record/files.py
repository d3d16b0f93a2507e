"""Files in and out: crash-safe writing (a file is either absent or complete, never
half-written), and reading a file a caller hands in, up to a size limit."""

from __future__ import annotations

from pathlib import Path

from pipeline.errors import BadInput, UploadRejected
from pipeline.record.crashpoints import crash_point
from signing.files import create_exclusive
from signing.files import write_atomic as _write_atomic

__all__ = ["create_exclusive", "read_upload", "write_atomic"]


def write_atomic(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (0600) and return ``path``; the crash tests can
    stop the process just before the rename (``store:before-rename``)."""
    return _write_atomic(path, data, before_rename=lambda: crash_point("store:before-rename"))


def read_upload(path: Path, limit: int) -> bytes:
    """Return the file's bytes, refusing before reading when it is over ``limit``."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise BadInput(f"无法读取 {path}", f"cannot read {path}: {exc.strerror}") from None
    if size > limit:
        raise UploadRejected(f"文件过大（{size} 字节，上限 {limit}）",
                             f"the file is too large ({size} bytes, limit {limit})")
    return path.read_bytes()
