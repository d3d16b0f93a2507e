"""The one place that picks the store's backend from the settings: the filesystem folder
``data/store`` (the embedded default) or an S3 bucket (``COUNTERSIGN_STORE_URL=s3://…``)."""

from __future__ import annotations

from pipeline.config import Settings
from pipeline.record.store import FilesystemStore, Store, StoreMisconfigured


def open_store(settings: Settings) -> Store:
    """Return the store ``settings`` name: ``data/store`` on disk, or an S3 bucket."""
    if not settings.store_url:
        return FilesystemStore(settings.data_dir / "store")
    if not settings.store_url.startswith("s3://"):
        raise StoreMisconfigured(
            f"COUNTERSIGN_STORE_URL 应为 s3://存储桶[/前缀]：{settings.store_url!r}",
            f"COUNTERSIGN_STORE_URL must be s3://bucket[/prefix], not {settings.store_url!r}")
    # boto3 takes a noticeable time to import: only deployments that use S3 pay for it.
    from pipeline.record.s3store import S3Store

    return S3Store.from_settings(settings)
