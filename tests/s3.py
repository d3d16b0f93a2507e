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
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import boto3
from botocore.config import Config

MOTO_SERVER = str(Path(sys.executable).with_name("moto_server"))
CREDENTIALS = {"aws_access_key_id": "countersign-test", "aws_secret_access_key": "not-secret",
               "region_name": "us-east-1"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def moto_server() -> Iterator[str]:
    """Run moto_server on a free loopback port; yield its endpoint URL."""
    port = _free_port()
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
