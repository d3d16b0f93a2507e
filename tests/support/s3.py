"""A real S3 API on loopback for the store tests: ``moto_server`` (PyPI, the test extra) in
its standalone HTTP mode, started on a free port and killed by its PID afterwards.

moto 5 enforces what these tests rely on — COMPLIANCE retention and legal holds refuse
``delete_object`` of a version, a bucket without Object Lock refuses retention — but not
everything a real server does: it lets a COMPLIANCE retention be shortened or turned into
GOVERNANCE, does not check ``ChecksumSHA256`` on upload, and has no GetObjectRetention
(the store reads retention from HEAD, as it does anyway).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import boto3
from botocore.config import Config

from pipeline.config import Settings
from tests.support.net import free_port

MOTO_SERVER = str(Path(sys.executable).with_name("moto_server"))
CREDENTIALS = {"aws_access_key_id": "countersign-test", "aws_secret_access_key": "not-secret",
               "region_name": "us-east-1"}
# A shared store keeps the CA keys only under an operator-held passphrase (record.keyring).
CA_PASSPHRASE = "countersign test CA"


@contextmanager
def moto_server() -> Iterator[str]:
    """Run moto_server on a free loopback port; yield its endpoint URL."""
    port = free_port()
    process = subprocess.Popen([MOTO_SERVER, "-H", "127.0.0.1", "-p", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("moto_server did not start") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.kill()
        process.wait(timeout=10)


def s3_client(endpoint: str):
    """Return a plain boto3 client of the server (the tests' own, to look and to attack)."""
    return boto3.client("s3", endpoint_url=endpoint, **CREDENTIALS,
                        config=Config(s3={"addressing_style": "path"},
                                      retries={"max_attempts": 1}))


def s3_settings(data_dir: Path, endpoint: str, bucket: str | None = None, **overrides
                ) -> Settings:
    """Return Settings whose store is a bucket (a fresh name unless given) of ``endpoint``,
    with the CA passphrase a shared store needs."""
    overrides.setdefault("ca_passphrase", CA_PASSPHRASE)
    return Settings(data_dir=data_dir,
                    store_url=f"s3://{bucket or 'cs-' + uuid.uuid4().hex[:12]}/countersign",
                    s3_endpoint=endpoint, s3_region=CREDENTIALS["region_name"],
                    aws_access_key_id=CREDENTIALS["aws_access_key_id"],
                    aws_secret_access_key=CREDENTIALS["aws_secret_access_key"], **overrides)


def cli_environment(settings: Settings) -> dict[str, str]:
    """Return the environment variables that give a ``countersign`` command ``settings``'
    store (and CA passphrase)."""
    return {"COUNTERSIGN_STORE_URL": settings.store_url,
            "COUNTERSIGN_CA_PASSPHRASE": settings.ca_passphrase,
            "COUNTERSIGN_S3_ENDPOINT": settings.s3_endpoint,
            "AWS_ACCESS_KEY_ID": settings.aws_access_key_id,
            "AWS_SECRET_ACCESS_KEY": settings.aws_secret_access_key}
