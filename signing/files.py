"""Where the library's own files live, written so that a file is either absent or complete.

The local CA keeps named files (certificates, encrypted keys, CRLs). The library reads and
writes them through :class:`FileSource`: a folder here (:class:`Folder`), or whatever the
application hands in — an object store shared by several machines — so the library never
needs to know where that is.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Protocol


class FileSource(Protocol):
    """Named files of the library (plain names such as ``root.crt``)."""

    def read(self, name: str) -> bytes | None:
        """Return the file's bytes, or None when there is no such file."""
        ...

    def write(self, name: str, data: bytes) -> None:
        """Write (or replace) the file, atomically."""
        ...

    def create(self, name: str, data: bytes) -> bool:
        """Write the file only if it does not exist yet; return whether it was written."""
        ...


def _temporary(path: Path, data: bytes) -> str:
    """Write ``data`` to a fresh 0600 file beside ``path`` (synced); return its name."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return tmp


def _sync_folder(folder: Path) -> None:
    directory = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def write_atomic(path: Path, data: bytes,
                 before_rename: Callable[[], None] | None = None) -> Path:
    """Write ``data`` to ``path`` via a temporary file, fsync and rename; return ``path``.

    The file is created 0600 (``mkstemp``), a missing folder 0700; ``before_rename`` lets
    an application hook its crash tests in at the one moment that matters.
    """
    tmp = _temporary(path, data)
    try:
        if before_rename is not None:
            before_rename()
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _sync_folder(path.parent)
    return path


def create_exclusive(path: Path, data: bytes) -> bool:
    """Write ``data`` to ``path`` only if no file is there; return whether it was written.

    The complete file is linked into place (``link`` refuses an existing name), so of two
    processes creating the same file at once exactly one wins and nobody sees half a file.
    """
    tmp = _temporary(path, data)
    try:
        os.link(tmp, path)
    except FileExistsError:
        return False
    finally:
        Path(tmp).unlink(missing_ok=True)
    _sync_folder(path.parent)
    return True


class Folder:
    """A :class:`FileSource` in one folder (made 0700, files 0600, on the first write)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __str__(self) -> str:
        return str(self.path)

    def read(self, name: str) -> bytes | None:
        """Return the bytes of ``name`` in the folder, or None."""
        try:
            return (self.path / name).read_bytes()
        except FileNotFoundError:
            return None

    def write(self, name: str, data: bytes) -> None:
        """Write ``name`` atomically."""
        write_atomic(self.path / name, data)

    def create(self, name: str, data: bytes) -> bool:
        """Write ``name`` unless it exists; return whether it was written."""
        return create_exclusive(self.path / name, data)


def as_source(where: FileSource | Path | str) -> FileSource:
    """Return ``where`` as a FileSource: a path becomes a :class:`Folder`."""
    return Folder(Path(where)) if isinstance(where, (str, os.PathLike)) else where
