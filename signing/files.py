"""Crash-safe file writing for the library: a file is either absent or complete."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def write_atomic(path: Path, data: bytes,
                 before_rename: Callable[[], None] | None = None) -> Path:
    """Write ``data`` to ``path`` via a temporary file, fsync and rename; return ``path``.

    The file is created 0600 (``mkstemp``), a missing folder 0700; ``before_rename`` lets
    an application hook its crash tests in at the one moment that matters.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if before_rename is not None:
            before_rename()
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    return path
