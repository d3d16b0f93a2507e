"""A bulk job's files, read from the store by any server: one by its name, or all of them
as one ZIP made while it is sent.

Each finished row of a bulk job names its file and the file's SHA-256 (``job_rows``); the
bytes are in the store's ``bulk/`` namespace (``Store.put_bulk``), not on the disk of the
worker that made them. Who may see a job, and so read its files, is ``people.policy``:
a job the caller may not see answers exactly like one that does not exist.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from pipeline.config import Settings
from pipeline.errors import BadInput
from pipeline.jobs.record import report
from pipeline.people.access import Principal
from pipeline.people.policy import may_see_job
from pipeline.record import database
from pipeline.record import jobs as records
from pipeline.record.backends import open_store

# Bytes per piece of a response body: a file is read whole (to check its hash before any
# of it is sent), then handed out in pieces of this size.
CHUNK = 64 * 1024


class UnknownJob(BadInput):
    code = "unknown_job"

    @classmethod
    def named(cls, job_id: str) -> UnknownJob:
        """Return the one answer for a job that does not exist and one the caller may not
        see."""
        return cls(f"未知任务 {job_id!r}", f"unknown job {job_id!r}")


class UnknownJobFile(BadInput):
    code = "unknown_file"

    @classmethod
    def named(cls, job_id: str, name: str) -> UnknownJobFile:
        return cls(f"任务 {job_id} 中没有文件 {name!r}", f"job {job_id} has no file {name!r}")


class FileNotStored(UnknownJobFile):
    """A row finished before bulk files were kept in the store: its file stayed in the
    folder of the machine that made it."""

    code = "file_not_stored"

    @classmethod
    def named(cls, job_id: str, name: str) -> FileNotStored:
        return cls(f"任务 {job_id} 的文件 {name!r} 不在存储中（在生成它的机器上）",
                   f"file {name!r} of job {job_id} is not in the store (it was made before "
                   "bulk files were stored, and stayed on the machine that made it)")


@dataclass(frozen=True)
class JobFile:
    """One file of a job: its name, its SHA-256, when its row finished, its bytes."""

    name: str
    sha256: str
    done_at: str
    data: bytes

    def chunks(self) -> Iterator[bytes]:
        """Yield the bytes in pieces of ``CHUNK``."""
        view = memoryview(self.data)
        for start in range(0, len(view), CHUNK):
            yield bytes(view[start:start + CHUNK])


def seen_job(settings: Settings, principal: Principal, job_id: str) -> dict:
    """Return the report of job ``job_id`` if the principal may see it; UnknownJob, the same
    error, when it is hidden or does not exist."""
    found = report(settings, job_id)
    if found is None or not may_see_job(principal, found["created_by"]):
        raise UnknownJob.named(job_id)
    return found


def job_file(settings: Settings, principal: Principal, job_id: str, name: str) -> JobFile:
    """Return the file ``name`` of job ``job_id`` (as the job's ``results[].file`` names
    it), read from the store and checked against its recorded SHA-256.

    Raises UnknownJob, UnknownJobFile (no finished row has that file), FileNotStored, or
    MissingRevision when the store no longer holds the bytes."""
    seen_job(settings, principal, job_id)
    with database.connection(settings.database) as conn:
        row = records.select_file(conn, job_id, name)
    if row is None:
        raise UnknownJobFile.named(job_id, name)
    return _read(settings, job_id, row)


def _read(settings: Settings, job_id: str, row: dict) -> JobFile:
    if not row["sha256"]:
        raise FileNotStored.named(job_id, row["file"])
    data = open_store(settings).get_bulk(row["sha256"])
    return JobFile(row["file"], row["sha256"], row["done_at"], data)


def job_zip(settings: Settings, principal: Principal, job_id: str) -> Iterator[bytes]:
    """Return the pieces of a ZIP holding every stored file of job ``job_id`` so far, in
    line order, made while it is read: one file in memory at a time.

    The job is checked, and its first file read, before this returns (so that an unknown
    job or a store that does not answer is an error, not a cut-off download). Files of rows
    finished before bulk files were stored are left out."""
    seen_job(settings, principal, job_id)
    with database.connection(settings.database) as conn:
        rows = [row for row in records.select_rows(conn, job_id) if row["file"]
                and row["sha256"]]
    first = _read(settings, job_id, rows[0]) if rows else None
    return _zipped(settings, job_id, first, rows[1:])


def _zipped(settings: Settings, job_id: str, first: JobFile | None, rest: list[dict]
            ) -> Iterator[bytes]:
    sink = _Sink()
    # Stored, not deflated: the PDFs' streams are compressed already.
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED) as archive:
        if first is not None:
            archive.writestr(_entry(settings, first), first.data)
            yield sink.take()
        for row in rest:
            found = _read(settings, job_id, row)
            archive.writestr(_entry(settings, found), found.data)
            yield sink.take()
    yield sink.take()


def _entry(settings: Settings, found: JobFile) -> zipfile.ZipInfo:
    """Return the ZIP entry of ``found``, dated when its row finished (local time)."""
    moment = datetime.fromisoformat(found.done_at).astimezone(settings.zone)
    entry = zipfile.ZipInfo(found.name, date_time=moment.timetuple()[:6])
    entry.external_attr = 0o644 << 16  # unpacked readable, as a download would be
    return entry


class _Sink(io.RawIOBase):
    """Where ``zipfile`` writes: not seekable (so it writes each entry's sizes after its
    bytes), and emptied by :meth:`take` after every entry."""

    def __init__(self) -> None:
        super().__init__()
        self._parts: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self._parts.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        """Return what was written since the last call, and forget it."""
        data = b"".join(self._parts)
        self._parts.clear()
        return data
