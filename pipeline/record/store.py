"""The store: every PDF revision, source .docx, archive package and ledger anchor, kept by
its SHA-256 — on local disk (the embedded default) or in an S3-compatible object store.

Two views of the same bytes:

- **by content** — the ground truth. The ledger names bytes by their SHA-256 and ``ledger
  verify`` re-hashes them; stored bytes are never overwritten, so storing them again is a
  no-op and every step can be retried.
- **by archive path** — what a person browsing the archive looks for: the template's archive
  folder from its manifest, then the document number (``项目文档-会议纪要/JY-2024-001/
  document.pdf``), and ``ledger-anchors/`` for the anchored chain heads. Only archived
  objects have one, and it always holds the same bytes as their content object.

Beside them, apart from both, two namespaces that are not documents and never get a
retention or a hold (nothing archives, lists or verifies them as revisions):

- the **keys** (``keys/``): the parties' PKCS#12s and the local CA, always encrypted, read
  by every process that signs. They are named rather than content-addressed: a key must
  stay replaceable and removable (see ``record.keyring``).
- the **bulk outputs** (``bulk/``): the draft PDFs of bulk jobs, kept by their SHA-256 so
  that any server can hand out what a worker on another machine made (the job's record
  names each file's hash). The ledger never names them; a draft is not a record to keep.

``record.backends.open_store(settings)`` is the one place that picks the backend.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Protocol

from pipeline.errors import BadInput, OperationFailed
from pipeline.record.files import create_exclusive, write_atomic

#: Top-level names of the store that an archive folder may not take.
ANCHOR_FOLDER = "ledger-anchors"
KEY_FOLDER = "keys"
BULK_FOLDER = "bulk"
RESERVED_FOLDERS = frozenset({"objects", ANCHOR_FOLDER, KEY_FOLDER, BULK_FOLDER})


class MissingRevision(OperationFailed):
    code = "missing_revision"


class StoreUnavailable(OperationFailed):
    """The object store did not answer, or refused a request."""

    code = "store_unavailable"


class StoreMisconfigured(BadInput):
    """The configured store cannot be used as it is (no bucket, no Object Lock, bad URL)."""

    code = "store_misconfigured"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def missing_bulk(digest: str, where: str) -> MissingRevision:
    """Return the error for a bulk output that is absent (or no longer has its hash)."""
    return MissingRevision(f"存储中找不到批量生成的文件 {digest}",
                           f"bulk output {digest} is not in the store {where}")


@dataclass(frozen=True)
class Archival:
    """How an archived object is filed and kept: its archive path and the day until which
    nothing may delete it (the template's retention date)."""

    path: str
    retain_until: date


def archive_path(*parts: str) -> str:
    """Return a safe archive path made of ``parts`` (each one a single path component).

    Slashes, backslashes and control characters inside a part become ``_`` (a department
    written ``市场/销售`` must not open a folder), and ``.``/``..``/empty parts are refused.
    """
    clean = []
    for part in parts:
        text = "".join("_" if ch in "/\\" or ord(ch) < 32 or ch == "\x7f" else ch
                       for ch in part).strip()
        if text in ("", ".", ".."):
            raise BadInput(f"归档路径部分无效：{part!r}", f"invalid archive path part {part!r}")
        clean.append(text)
    return "/".join(clean)


def check_archive_path(path: str) -> str:
    """Return ``path`` if it is a relative archive path with sound parts, else BadInput."""
    parts = path.split("/")
    if any(p in ("", ".", "..") or p != p.strip() for p in parts) or "\\" in path or any(
            ord(ch) < 32 for ch in path):
        raise BadInput(f"归档路径无效：{path!r}", f"invalid archive path {path!r}")
    return path


def archive_location(path: str) -> str:
    """Return ``path`` if archived objects may be filed or listed there: a sound relative
    path outside the content objects, the keys and the bulk outputs (StoreMisconfigured
    otherwise)."""
    top = check_archive_path(path).split("/")[0]
    if top in ("objects", KEY_FOLDER, BULK_FOLDER):
        raise StoreMisconfigured(f"归档目录不能名为 {top}",
                                 f"an archive folder cannot be named {top!r}")
    return path


class Store(Protocol):
    """What the pipeline needs of a content-addressed store with an archive."""

    backend: str

    def put(self, data: bytes, *, archive: Archival | None = None) -> str:
        """Store ``data``; return its SHA-256 (hex). With ``archive``, also file it under
        ``archive.path`` and keep it (both views) until ``archive.retain_until``."""
        ...

    def get(self, digest: str) -> bytes:
        """Return the bytes whose SHA-256 is ``digest``; MissingRevision if absent."""
        ...

    def verify(self, digest: str) -> str | None:
        """Return None if ``digest`` is stored intact, else ``missing``, ``altered`` or
        ``hidden`` (an object store's delete marker covers the bytes)."""
        ...

    def is_archived(self, digest: str) -> bool:
        """Return True if ``digest`` is kept as an archive (read-only, or locked)."""
        ...

    def set_hold(self, digest: str, path: str | None, on: bool) -> None:
        """Set or lift the legal hold on an archived object (and its archive path)."""
        ...

    def archived(self, folder: str, after: str = "") -> dict[str, bytes]:
        """Return every object filed under the archive folder ``folder`` whose archive path
        sorts after ``after`` (all when empty), by archive path."""
        ...

    def put_bulk(self, data: bytes) -> str:
        """Store a bulk output under ``bulk/`` by its SHA-256 — never locked, never
        rewritten once there; return the SHA-256 (hex)."""
        ...

    def get_bulk(self, digest: str) -> bytes:
        """Return the bulk output whose SHA-256 is ``digest``; MissingRevision if absent."""
        ...

    def prepare(self) -> None:
        """Make the store ready for use (create it, or refuse one that cannot be used)."""
        ...

    def health(self) -> dict[str, object]:
        """Return {backend, ok, …}: whether the store answers and is fit for use."""
        ...

    @property
    def keys_location(self) -> str:
        """Where the keys are, for people: a folder or an ``s3://`` URL."""
        ...

    def read_key(self, name: str) -> bytes | None:
        """Return the key object ``name`` (a path under ``keys/``), or None if absent."""
        ...

    def write_key(self, name: str, data: bytes, *, replace: bool = True) -> bool:
        """Write the key object ``name`` — never under retention. With ``replace=False``
        only if there is none yet (of two writers exactly one wins); return whether
        ``data`` was written."""
        ...

    def delete_key(self, name: str) -> None:
        """Remove the key object ``name`` for good (every version of it)."""
        ...


class FilesystemStore:
    """A content-addressed folder: ``ab/cdef….bin`` holds the bytes whose SHA-256 is abcdef…

    Nothing here deletes or replaces stored bytes. Archived files are made read-only and
    hard-linked (the same file, no second copy) under ``archive/<archive path>`` beside the
    store. A filesystem has no retention a program can set that its administrator cannot
    undo: retention dates and legal holds are recorded in the archive package and the ledger,
    the files stay read-only, and ``ledger verify`` names any file changed from outside. For
    retention that nobody can shorten, use the S3 store with Object Lock.
    """

    backend = "filesystem"

    def __init__(self, root: Path, archive_root: Path | None = None,
                 keys_root: Path | None = None) -> None:
        self.root = root
        self.archive_root = archive_root or root.parent / "archive"
        # ``data/keys``: where the parties' PKCS#12 files have always been.
        self.keys_root = keys_root or root.parent / KEY_FOLDER
        self.bulk_root = root.parent / BULK_FOLDER

    def path(self, digest: str) -> Path:
        return self.root / digest[:2] / f"{digest[2:]}.bin"

    def put(self, data: bytes, *, archive: Archival | None = None) -> str:
        """Store ``data`` (read-only and filed under its archive path when ``archive``);
        return its SHA-256 (hex)."""
        digest = sha256(data)
        target = self.path(digest)
        if not target.is_file():
            write_atomic(target, data)
        if archive is not None:
            target.chmod(0o444)
            self._file(target, archive_location(archive.path))
        return digest

    def _file(self, target: Path, path: str) -> None:
        link = self.archive_root / path
        if link.is_file() and link.samefile(target):
            return
        link.parent.mkdir(parents=True, exist_ok=True)
        temporary = link.with_name(f".{link.name}.{os.getpid()}.tmp")
        temporary.unlink(missing_ok=True)
        try:
            os.link(target, temporary)
        except OSError:  # another filesystem: a read-only copy instead of a link
            shutil.copyfile(target, temporary)
            temporary.chmod(0o444)
        os.replace(temporary, link)

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

    def set_hold(self, digest: str, path: str | None, on: bool) -> None:
        """A filesystem cannot hold a file against its administrator: the hold is what the
        ledger records; here the archived file is only checked to be present and read-only."""
        target = self.path(digest)
        if not target.is_file():
            raise MissingRevision(f"找不到归档文件 {digest}", f"archived {digest} is missing")
        target.chmod(0o444)

    def archived(self, folder: str, after: str = "") -> dict[str, bytes]:
        """Return the files under ``archive/<folder>`` (those whose path sorts after
        ``after``), by archive path."""
        base = self.archive_root / archive_location(folder)
        if not base.is_dir():
            return {}
        found = {p.relative_to(self.archive_root).as_posix(): p for p in base.rglob("*")
                 if p.is_file() and not p.name.startswith(".")}
        return {path: found[path].read_bytes() for path in sorted(found) if path > after}

    def bulk_path(self, digest: str) -> Path:
        return self.bulk_root / digest[:2] / f"{digest[2:]}.bin"

    def put_bulk(self, data: bytes) -> str:
        """Write ``bulk/ab/cdef….bin`` atomically unless it is there; return the SHA-256."""
        digest = sha256(data)
        target = self.bulk_path(digest)
        if not target.is_file():
            write_atomic(target, data)
        return digest

    def get_bulk(self, digest: str) -> bytes:
        """Return the bulk output ``digest`` if its bytes still have that hash;
        MissingRevision otherwise."""
        try:
            data = self.bulk_path(digest).read_bytes()
        except FileNotFoundError:
            data = None
        if data is None or sha256(data) != digest:
            raise missing_bulk(digest, str(self.bulk_root))
        return data

    def prepare(self) -> None:
        """Nothing to do: folders are made on the first write."""
        ...

    def health(self) -> dict[str, object]:
        """Return whether the store's folder (or the folder it will be made in) is writable."""
        existing = next(p for p in (self.root, *self.root.parents) if p.exists())
        return {"backend": self.backend, "ok": os.access(existing, os.W_OK),
                "path": str(self.root)}

    # --- keys -------------------------------------------------------------------------------

    @property
    def keys_location(self) -> str:
        return str(self.keys_root)

    def _key_path(self, name: str) -> Path:
        return self.keys_root / check_archive_path(name)

    def read_key(self, name: str) -> bytes | None:
        """Return the bytes of ``keys/<name>``, or None."""
        try:
            return self._key_path(name).read_bytes()
        except FileNotFoundError:
            return None

    def write_key(self, name: str, data: bytes, *, replace: bool = True) -> bool:
        """Write ``keys/<name>`` (0600, its folders 0700); with ``replace=False`` only if
        absent. Return whether it was written."""
        path = self._key_path(name)
        folder = self.keys_root
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        for part in path.relative_to(self.keys_root).parts[:-1]:
            folder /= part
            folder.mkdir(mode=0o700, exist_ok=True)
        if replace:
            write_atomic(path, data)
            return True
        return create_exclusive(path, data)

    def delete_key(self, name: str) -> None:
        """Remove ``keys/<name>`` (nothing if it is not there)."""
        self._key_path(name).unlink(missing_ok=True)
