"""``countersign serve`` as a separate process, the way it runs in production."""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from tests.support.cli import COUNTERSIGN
from tests.support.net import free_port


@contextlib.contextmanager
def running_service(data_dir: Path, env: dict[str, str] | None = None,
                    startup_s: float = 60) -> Iterator[str]:
    """Start ``countersign serve`` on a free loopback port with ``env`` added to the
    environment; yield its base URL once it answers, and stop it (SIGTERM: the service
    closes its LibreOffice pool) when the block ends."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            [COUNTERSIGN, "--data-dir", str(data_dir), "serve", "--port", str(port)],
            stdout=subprocess.DEVNULL, stderr=log, env={**os.environ, **(env or {})})
        try:
            deadline = time.monotonic() + startup_s
            while True:
                try:
                    httpx.get(f"{base}/api/health", timeout=2)
                    break
                except httpx.TransportError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        log.seek(0)
                        raise AssertionError("countersign serve did not answer:\n"
                                             + log.read().decode(errors="replace")) from None
                    time.sleep(0.2)
            yield base
        finally:
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
