"""The one place that picks the store's backend from the settings: the filesystem folder
``data/store`` (the embedded default), a folder every machine mounts
(``COUNTERSIGN_STORE_URL=file:///path``) or an S3 bucket (``COUNTERSIGN_STORE_URL=s3://…``)."""

from __future__ import annotations

from pathlib import Path

from pipeline.config import Settings
from pipeline.record.store import FilesystemStore, Store, StoreMisconfigured


def open_store(settings: Settings) -> Store:
    """Return the store ``settings`` name: ``data/store`` on disk, a shared folder laid out
    the same way (``store/``, ``archive/``, ``keys/``), or an S3 bucket."""
    url = settings.store_url
    if not url:
        return FilesystemStore(settings.data_dir / "store")
    if url.startswith("file://"):
        base = url.removeprefix("file://")
        if not base.startswith("/") or base.strip("/") == "":
            raise StoreMisconfigured(
                f"COUNTERSIGN_STORE_URL 应为 file:///绝对路径：{url!r}",
                f"COUNTERSIGN_STORE_URL must be file:///absolute/path, not {url!r}")
        return FilesystemStore(Path(base) / "store")
    if not url.startswith("s3://"):
        raise StoreMisconfigured(
            f"COUNTERSIGN_STORE_URL 应为 s3://存储桶[/前缀] 或 file:///路径：{url!r}",
            f"COUNTERSIGN_STORE_URL must be s3://bucket[/prefix] or file:///path, not {url!r}")
    # boto3 takes a noticeable time to import: only deployments that use S3 pay for it.
    from pipeline.record.s3store import S3Store

    return S3Store.from_settings(settings)
