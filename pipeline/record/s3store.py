"""The S3 store: revisions, source .docx files, archive packages and ledger anchors as objects
in an S3-compatible bucket (AWS S3, MinIO, Ceph RGW), through boto3.

Key layout under ``s3://bucket/prefix/``:

- ``keys/…`` — the parties' PKCS#12s and the local CA (``record.keyring``): named objects,
  always encrypted, replaced and removed like any object. They never get a retention or a
  hold — a key that leaked must be removable — which is also why the bucket must have no
  *default* retention (``prepare`` refuses one): Object Lock is set object by object.
- ``objects/ab/cdef…`` — the bytes whose SHA-256 is ``abcdef…``: the ground truth, what the
  ledger names and ``ledger verify`` re-hashes. Written once (``ChecksumSHA256`` lets the
  server refuse a damaged upload), never overwritten by this program.
- ``bulk/ab/cdef…`` — a bulk job's draft PDF whose SHA-256 is ``abcdef…`` (the job's rows
  name the hashes). Written once, never locked: no retention, no hold.
- ``<archive folder>/<document number>/<name>`` (e.g. ``项目文档-会议纪要/JY-2024-001/
  document.pdf``) and ``ledger-anchors/<seq>.tsr`` — a *second object* holding the same bytes
  (its ``sha256`` metadata names them), so that the archive can be browsed and handed over
  folder by folder without the ledger. It is a copy rather than the only key because an
  archive folder is a manifest setting that may change between template versions, while
  the content address never does.

The bucket must have Object Lock enabled (``countersign init`` creates it so, and refuses an
existing bucket without it). Archived objects — both keys — carry COMPLIANCE retention until
the end of the template's retention date: until then no credential, not even the bucket
owner's, can delete that version or shorten its retention. A retention already set is only
ever extended. A legal hold (``countersign hold DOC on``) keeps them beyond that date until
it is lifted. Revisions that are not archived (drafts of an open document) carry no lock.

A versioned bucket lets a delete without a version id add a *delete marker*, and a put add a
newer version: neither removes a locked version. Reads therefore fall back to the newest
version whose bytes have the expected hash, and ``verify`` names the marker or the foreign
version (``hidden``, ``altered``) so that such an attempt is seen.
"""

from __future__ import annotations

import base64
import hashlib
import os
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from pipeline.config import Settings
from pipeline.record.store import (
    BULK_FOLDER,
    KEY_FOLDER,
    Archival,
    MissingRevision,
    StoreMisconfigured,
    StoreUnavailable,
    archive_location,
    check_archive_path,
    missing_bulk,
    sha256,
)

COMPLIANCE = "COMPLIANCE"
_ABSENT = ("NoSuchKey", "404", "NotFound", "NoSuchVersion")
# A conditional write lost: the object exists (412), or another write of it is under way.
_TAKEN = ("PreconditionFailed", "412", "ConditionalRequestConflict")


class _Absent(Exception):
    """The key (or version) does not exist."""


class _Taken(Exception):
    """A write "only if absent" found the object there."""


def retention_moment(day: date) -> datetime:
    """Return the instant retention ends for a retention *date*: the end of that day, UTC."""
    return datetime.combine(day + timedelta(days=1), time.min, tzinfo=UTC)


@lru_cache(maxsize=8)
def _client(pid: int, endpoint: str, region: str, key_id: str, secret: str, token: str):
    # One client per process (``pid`` in the key): forked workers must not share the
    # parent's connection pool.
    session = boto3.session.Session(aws_access_key_id=key_id or None,
                                    aws_secret_access_key=secret or None,
                                    aws_session_token=token or None,
                                    region_name=region or "us-east-1")
    config = Config(connect_timeout=5, read_timeout=60,
                    retries={"max_attempts": 3, "mode": "standard"},
                    # Path-style keys and checksums only where an operation needs them:
                    # what MinIO, Ceph RGW and moto all accept.
                    s3={"addressing_style": "path"} if endpoint else {},
                    request_checksum_calculation="when_required",
                    response_checksum_validation="when_required")
    return session.client("s3", endpoint_url=endpoint or None, config=config)


class S3Store:
    """A content-addressed store in one S3 bucket under a prefix (see the module text)."""

    backend = "s3"

    def __init__(self, client: Any, bucket: str, prefix: str = "", endpoint: str = "",
                 region: str = "") -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
        self.endpoint = endpoint
        self.region = region

    @classmethod
    def from_settings(cls, settings: Settings) -> S3Store:
        """Return the store of ``COUNTERSIGN_STORE_URL=s3://bucket[/prefix]``."""
        bucket, _, prefix = settings.store_url.removeprefix("s3://").partition("/")
        if not bucket or any(c in bucket for c in " \\?#"):
            raise StoreMisconfigured(
                f"COUNTERSIGN_STORE_URL 中的存储桶名无效：{settings.store_url!r}",
                f"COUNTERSIGN_STORE_URL names no valid bucket: {settings.store_url!r}")
        client = _client(os.getpid(), settings.s3_endpoint, settings.s3_region,
                         settings.aws_access_key_id, settings.aws_secret_access_key,
                         settings.aws_session_token)
        return cls(client, bucket, prefix, settings.s3_endpoint, settings.s3_region)

    @property
    def where(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" + (f" at {self.endpoint}"
                                                      if self.endpoint else "")

    # --- requests, with errors turned into the pipeline's -------------------------------

    def _call(self, operation: str, **kwargs: Any) -> dict:
        try:
            return getattr(self.client, operation)(Bucket=self.bucket, **kwargs)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            if code in _ABSENT:
                raise _Absent(code) from None
            if code in _TAKEN:
                raise _Taken(code) from None
            if code == "NoSuchBucket":
                raise StoreMisconfigured(
                    f"存储桶 {self.bucket} 不存在（请先运行 countersign init）",
                    f"bucket {self.bucket} does not exist at {self.where} "
                    "(run countersign init)") from None
            raise StoreUnavailable(
                f"对象存储拒绝了请求 {operation}：{code}",
                f"the object store {self.where} refused {operation}: {code} "
                f"{error.get('Message', '')}".rstrip()) from None
        except BotoCoreError as exc:
            raise StoreUnavailable(f"无法访问对象存储 {self.where}",
                                   f"cannot use the object store {self.where}: {exc}") from None

    def _key(self, digest: str) -> str:
        return f"{self.prefix}objects/{digest[:2]}/{digest[2:]}"

    def _archive_key(self, path: str) -> str:
        return self.prefix + archive_location(path)

    def _head(self, key: str, version: str | None = None) -> dict | None:
        try:
            return self._call("head_object", Key=key, **({"VersionId": version}
                                                        if version else {}))
        except _Absent:
            return None

    def _read(self, key: str, version: str | None = None) -> bytes:
        response = self._call("get_object", Key=key, **({"VersionId": version}
                                                       if version else {}))
        return response["Body"].read()

    def _versions(self, key: str) -> list[dict]:
        """Return the stored versions of ``key`` (not delete markers), newest first."""
        found: list[dict] = []
        marker: dict[str, str] = {}
        while True:
            page = self._call("list_object_versions", Prefix=key, **marker)
            found += [v for v in page.get("Versions", ()) if v["Key"] == key]
            if not page.get("IsTruncated"):
                break
            marker = {"KeyMarker": page["NextKeyMarker"],
                      "VersionIdMarker": page.get("NextVersionIdMarker", "")}
        return sorted(found, key=lambda v: v["LastModified"], reverse=True)

    def _upload(self, key: str, data: bytes, digest: str, until: datetime | None = None
                ) -> dict:
        # Content-MD5 beside the SHA-256 checksum: every S3 server asks for one of the two on a
        # put with a retention, and the older ones only know Content-MD5.
        lock = ({"ObjectLockMode": COMPLIANCE, "ObjectLockRetainUntilDate": until,
                 "ContentMD5": base64.b64encode(hashlib.md5(data).digest()).decode()}
                if until else {})
        return self._call("put_object", Key=key, Body=data, Metadata={"sha256": digest},
                          ChecksumSHA256=base64.b64encode(bytes.fromhex(digest)).decode(),
                          **lock)

    def _lock(self, key: str, head: dict, until: datetime) -> None:
        """Give the version ``head`` describes COMPLIANCE retention until ``until``, never
        shortening a retention it already has."""
        current = head.get("ObjectLockRetainUntilDate")
        if head.get("ObjectLockMode") == COMPLIANCE and current and current >= until:
            return
        version = {"VersionId": head["VersionId"]} if head.get("VersionId") else {}
        self._call("put_object_retention", Key=key, **version,
                   Retention={"Mode": COMPLIANCE, "RetainUntilDate": until})

    # --- the Store protocol ---------------------------------------------------------------

    def put(self, data: bytes, *, archive: Archival | None = None) -> str:
        """Store ``data`` under its SHA-256 (no-op if there); with ``archive``, lock it and
        its archive-path copy until the retention date. Return the SHA-256 (hex)."""
        digest = sha256(data)
        key = self._key(digest)
        head = self._head(key)
        if head is None or (archive is not None and self._read(
                key, head.get("VersionId")) != data):
            # Absent — or, before locking, found to hold other bytes: put the right ones
            # back as the newest version (the foreign one stays for the audit trail).
            self._upload(key, data, digest)
            head = self._head(key)
        if archive is None:
            return digest
        until = retention_moment(archive.retain_until)
        self._lock(key, head or {}, until)
        copy_key = self._archive_key(archive.path)
        copy = self._head(copy_key)
        if copy is None or copy.get("Metadata", {}).get("sha256") != digest:
            self._upload(copy_key, data, digest, until)
        else:
            self._lock(copy_key, copy, until)
        return digest

    def get(self, digest: str) -> bytes:
        """Return the bytes whose SHA-256 is ``digest``, reading past a delete marker or a
        foreign newer version to the version that holds them; MissingRevision if none does."""
        data = self._find(self._key(digest), digest)
        if data is None:
            raise MissingRevision(f"找不到修订版本 {digest}",
                                  f"revision {digest} is not in the store {self.where}")
        return data

    def _find(self, key: str, digest: str) -> bytes | None:
        """Return the newest version of ``key`` whose bytes have the SHA-256 ``digest``
        (the current one first), or None."""
        try:
            data = self._read(key)
            if sha256(data) == digest:
                return data
        except _Absent:
            pass
        for version in self._versions(key):
            data = self._read(key, version["VersionId"])
            if sha256(data) == digest:
                return data
        return None

    def verify(self, digest: str) -> str | None:
        """Return None if the current object of ``digest`` holds its bytes, else ``missing``,
        ``hidden`` (a delete marker covers it) or ``altered``."""
        key = self._key(digest)
        try:
            return None if sha256(self._read(key)) == digest else "altered"
        except _Absent:
            return "hidden" if self._versions(key) else "missing"

    def is_archived(self, digest: str) -> bool:
        """Return True if ``digest``'s object is under COMPLIANCE retention now."""
        head = self._head(self._key(digest))
        until = head and head.get("ObjectLockRetainUntilDate")
        return bool(head and head.get("ObjectLockMode") == COMPLIANCE and until
                    and until > datetime.now(UTC))

    def set_hold(self, digest: str, path: str | None, on: bool) -> None:
        """Set or lift the legal hold on ``digest``'s object and its archive-path copy."""
        keys = [self._key(digest), *([self._archive_key(path)] if path else [])]
        for key in keys:
            head = self._head(key)
            if head is None:
                raise MissingRevision(f"找不到归档对象 {key}",
                                      f"archived object {key} is not in {self.where}")
            version = {"VersionId": head["VersionId"]} if head.get("VersionId") else {}
            self._call("put_object_legal_hold", Key=key, **version,
                       LegalHold={"Status": "ON" if on else "OFF"})

    def legal_hold(self, digest: str) -> bool:
        """Return True if ``digest``'s current object is under a legal hold."""
        head = self._head(self._key(digest))
        return bool(head and head.get("ObjectLockLegalHoldStatus") == "ON")

    def archived(self, folder: str, after: str = "") -> dict[str, bytes]:
        """Return the newest stored version of every key under ``folder`` (after the
        archive path ``after``), even one a delete marker hides, by archive path."""
        prefix = self._archive_key(folder) + "/"
        newest: dict[str, dict] = {}
        # S3 lists keys in UTF-8 byte order, which is the order of ``after`` comparisons.
        marker: dict[str, str] = {"KeyMarker": self.prefix + after} if after else {}
        while True:
            page = self._call("list_object_versions", Prefix=prefix, **marker)
            for version in page.get("Versions", ()):
                known = newest.get(version["Key"])
                if known is None or version["LastModified"] > known["LastModified"]:
                    newest[version["Key"]] = version
            if not page.get("IsTruncated"):
                break
            marker = {"KeyMarker": page["NextKeyMarker"],
                      "VersionIdMarker": page.get("NextVersionIdMarker", "")}
        return {key[len(self.prefix):]: self._read(key, version["VersionId"])
                for key, version in sorted(newest.items())}

    # --- keys (never locked) ----------------------------------------------------------------

    @property
    def keys_location(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}{KEY_FOLDER}/"

    def _key_object(self, name: str) -> str:
        return f"{self.prefix}{KEY_FOLDER}/{check_archive_path(name)}"

    def read_key(self, name: str) -> bytes | None:
        """Return the current object ``keys/<name>``, or None (a removed key stays removed:
        no older version is read past a delete marker)."""
        try:
            return self._read(self._key_object(name))
        except _Absent:
            return None

    def write_key(self, name: str, data: bytes, *, replace: bool = True) -> bool:
        """Put ``keys/<name>`` with no retention and no hold; with ``replace=False`` only if
        absent (``If-None-Match: *``). Return whether it was written."""
        digest = sha256(data)
        condition = {} if replace else {"IfNoneMatch": "*"}
        try:
            self._call("put_object", Key=self._key_object(name), Body=data,
                       Metadata={"sha256": digest},
                       ChecksumSHA256=base64.b64encode(bytes.fromhex(digest)).decode(),
                       **condition)
        except _Taken:
            return False
        return True

    def delete_key(self, name: str) -> None:
        """Delete every version (and delete marker) of ``keys/<name>``: an unlocked object,
        so none is left behind for anyone to read."""
        key = self._key_object(name)
        page = self._call("list_object_versions", Prefix=key)
        for entry in (*page.get("Versions", ()), *page.get("DeleteMarkers", ())):
            if entry["Key"] == key:
                self._call("delete_object", Key=key, VersionId=entry["VersionId"])

    # --- bulk outputs (never locked) ------------------------------------------------------

    def _bulk_key(self, digest: str) -> str:
        return f"{self.prefix}{BULK_FOLDER}/{digest[:2]}/{digest[2:]}"

    def put_bulk(self, data: bytes) -> str:
        """Put ``bulk/ab/cdef…`` with no retention and no hold, unless an object that says
        it holds these bytes is there already; return the SHA-256 (hex)."""
        digest = sha256(data)
        key = self._bulk_key(digest)
        head = self._head(key)
        if head is None or head.get("Metadata", {}).get("sha256") != digest:
            self._upload(key, data, digest)
        return digest

    def get_bulk(self, digest: str) -> bytes:
        """Return the bulk output ``digest`` (past a delete marker or a foreign version, as
        ``get``); MissingRevision if no version holds it."""
        data = self._find(self._bulk_key(digest), digest)
        if data is None:
            raise missing_bulk(digest, self.where)
        return data

    def prepare(self) -> None:
        """Create the bucket with Object Lock enabled, or check that the existing one has it
        (StoreMisconfigured if not: its archive could be deleted before its retention date)
        and sets no default retention (which would lock every key and draft with it)."""
        try:
            self._call("head_bucket")
        except (_Absent, StoreMisconfigured):
            region = self.region or "us-east-1"
            where = ({} if region == "us-east-1" else
                     {"CreateBucketConfiguration": {"LocationConstraint": region}})
            self._call("create_bucket", ObjectLockEnabledForBucket=True, **where)
            return
        lock = self._object_lock()
        if not lock:
            raise StoreMisconfigured(
                f"存储桶 {self.bucket} 未启用对象锁定（Object Lock），拒绝使用",
                f"bucket {self.bucket} has no Object Lock enabled, so archives could be "
                "deleted before their retention date: enable it or use a new bucket")
        if lock.get("Rule", {}).get("DefaultRetention"):
            raise StoreMisconfigured(
                f"存储桶 {self.bucket} 设有默认保留期，会锁定密钥与草稿，拒绝使用",
                f"bucket {self.bucket} has a default retention rule, which would lock the keys "
                "and drafts too: remove the rule (Countersign locks each archived object itself)")

    def _object_lock(self) -> dict:
        """Return the bucket's Object Lock configuration ({} when it has none)."""
        try:
            config = self._call("get_object_lock_configuration")
        except StoreUnavailable as exc:
            if "ObjectLockConfigurationNotFound" in exc.en:
                return {}
            raise
        found = config.get("ObjectLockConfiguration", {})
        return found if found.get("ObjectLockEnabled") == "Enabled" else {}

    def health(self) -> dict[str, object]:
        """Return whether the bucket answers and has Object Lock enabled."""
        report: dict[str, object] = {"backend": self.backend, "bucket": self.bucket,
                                     "prefix": self.prefix, "endpoint": self.endpoint}
        try:
            self._call("head_bucket")
            report["object_lock"] = bool(self._object_lock())
            report["ok"] = report["object_lock"]
        except (_Absent, StoreMisconfigured, StoreUnavailable) as exc:
            report.update(ok=False, problem=str(exc) or "bucket not found")
        return report
