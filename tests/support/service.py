"""``countersign serve`` and ``countersign worker`` as separate processes, the way they run
in production."""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.cli import COUNTERSIGN
from tests.support.net import free_port


@contextlib.contextmanager
def running_service(data_dir: Path, env: dict[str, str] | None = None,
                    startup_s: float = 60, args: tuple[str, ...] = ()) -> Iterator[str]:
    """Start ``countersign serve`` on a free loopback port with ``env`` added to the
    environment; yield its base URL once it answers, and stop it (SIGTERM: the service
    closes its LibreOffice pool) when the block ends."""
    with service_process(data_dir, env, startup_s, args) as (_, base):
        yield base


@contextlib.contextmanager
def service_process(data_dir: Path, env: dict[str, str] | None = None,
                    startup_s: float = 60, args: tuple[str, ...] = ()
                    ) -> Iterator[tuple[subprocess.Popen, str]]:
    """Like :func:`running_service`, yielding the process too (a test may kill it)."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            [COUNTERSIGN, "--data-dir", str(data_dir), "serve", "--port", str(port), *args],
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
            yield process, base
        finally:
            _stop(process)


@contextlib.contextmanager
def worker_process(data_dir: Path, env: dict[str, str] | None = None,
                   args: tuple[str, ...] = ()) -> Iterator[subprocess.Popen]:
    """Start ``countersign worker``; yield the process (its stderr is a temporary file,
    ``process.log``); stop it with SIGTERM when the block ends, unless it has ended."""
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            [COUNTERSIGN, "--data-dir", str(data_dir), "worker", *args],
            stdout=subprocess.DEVNULL, stderr=log, env={**os.environ, **(env or {})})
        process.log = log  # type: ignore[attr-defined]
        try:
            yield process
        finally:
            _stop(process)


def output_of(process: subprocess.Popen) -> str:
    """Return what a process started by :func:`worker_process` wrote to stderr."""
    log = process.log  # type: ignore[attr-defined]
    log.seek(0)
    return log.read().decode(errors="replace")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def wait_until(predicate, within_s: float, what: str, log=lambda: ""):
    """Return ``predicate()`` once it is true; fail the test, with ``log()``, if it is not
    within ``within_s`` seconds."""
    deadline = time.monotonic() + within_s
    while not (value := predicate()):
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {within_s} s\n{log()}")
        time.sleep(0.1)
    return value
