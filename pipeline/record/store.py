"""The revision store: every PDF revision and source .docx, stored by its SHA-256.

Files are written atomically (temporary file, fsync, rename) and never overwritten: storing
bytes that are already there is a no-op, so every step can be retried safely.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Protocol

from pipeline.errors import OperationFailed
from pipeline.record.files import write_atomic


class MissingRevision(OperationFailed):
    code = "missing_revision"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Store(Protocol):
    """What the pipeline needs of a content-addressed store. The filesystem store below is
    the embedded default; an S3-compatible one (Object Lock for the archive) implements the
    same four methods."""

    def put(self, data: bytes, *, archive: bool = False) -> str: ...

    def get(self, digest: str) -> bytes: ...

    def verify(self, digest: str) -> str | None: ...

    def is_archived(self, digest: str) -> bool: ...


class RevisionStore:
    """A content-addressed folder: ``ab/cdef….bin`` holds the bytes whose SHA-256 is abcdef…

    Nothing here deletes or replaces stored bytes; archived files are also made read-only,
    so the one way to change them is from outside the program — which ``ledger verify``
    names.
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, digest: str) -> Path:
        return self.root / digest[:2] / f"{digest[2:]}.bin"

    def put(self, data: bytes, *, archive: bool = False) -> str:
        """Store ``data`` (read-only when ``archive``); return its SHA-256 (hex)."""
        digest = sha256(data)
        target = self.path(digest)
        if not target.is_file():
            write_atomic(target, data)
        if archive:
            target.chmod(0o444)
        return digest

    def is_archived(self, digest: str) -> bool:
        """Return True if ``digest`` is stored read-only as part of an archive."""
        path = self.path(digest)
        return path.is_file() and not path.stat().st_mode & 0o222

    def get(self, digest: str) -> bytes:
        """Return the bytes stored under ``digest``; MissingRevision if absent."""
        try:
            return self.path(digest).read_bytes()
        except FileNotFoundError:
            raise MissingRevision(f"找不到修订版本 {digest}",
                                  f"revision {digest} is not in the store") from None

    def verify(self, digest: str) -> str | None:
        """Return None if ``digest`` is stored intact, else what is wrong."""
        path = self.path(digest)
        if not path.is_file():
            return "missing"
        if sha256(path.read_bytes()) != digest:
            return "altered"
        return None
