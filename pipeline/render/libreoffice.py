""".docx → PDF/A-2b through a pool of warm LibreOffice processes.

Each worker is one ``soffice`` with its own user profile and UNO port, driven by a bridge
process on Debian's Python (``uno_bridge.py``) that converts through files in the worker's
folder and is the office's watchdog: LibreOffice never outlives the process that owns the
pool, however that process ends (a normal exit, an error, SIGTERM or SIGKILL). A conversion
that exceeds its timeout kills that worker; a worker that crashes is replaced and the document
retried on a fresh one, so one bad process never fails other requests; a worker that has done
``recycle_after`` conversions is replaced to keep LibreOffice's memory in check.

LibreOffice never reaches the network: each profile blocks untrusted referer links and link
updates, documents load with ``UpdateDocMode=NO_UPDATE`` and macros off, and a .docx that
declares external parts other than hyperlinks is refused before LibreOffice sees it
(``safe_docx.check_docx``).
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import queue
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import weakref
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import ConversionError, ConversionTimeout
from pipeline.render.fonts import fontconfig_file
from pipeline.render.office_profile import fresh_profile, profile_seed
from pipeline.render.safe_docx import check_docx

log = logging.getLogger(__name__)

SYSTEM_PYTHON = "/usr/bin/python3"
BRIDGE = Path(__file__).with_name("uno_bridge.py")
@dataclass(frozen=True)
class PoolSpec:
    """How the pool runs: ``size`` 0 means one process per core."""

    size: int = 0
    timeout_s: float = 60.0
    recycle_after: int = 200
    startup_timeout_s: float = 60.0
    soffice: str = "soffice"
    # Where a prepared profile is kept and copied into each new worker (see
    # office_profile.py); None: every worker makes its own.
    profile_cache: Path | None = None
    # A .docx converted once by every fresh worker before it takes work, so that the first
    # real document does not pay for loading fonts and filters (about twice the usual time).
    warmup: Path | None = None
    # Where the SC faces are extracted for the workers (pipeline/render/fonts.py); None:
    # a per-user folder in the system's temporary directory.
    fonts_dir: Path | None = None

    @property
    def workers(self) -> int:
        return self.size or max(1, os.cpu_count() or 1)

    @property
    def seed(self) -> Path | None:
        """The prepared profile for this LibreOffice, if it has been made."""
        return profile_seed(self.profile_cache, self.soffice, create=False)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _WorkerDied(Exception):
    """The office process or its bridge is gone; the document may be retried elsewhere."""


class Worker:
    """One soffice process with its own profile and port, and the bridge that drives it.

    The bridge starts soffice itself and is its watchdog (see uno_bridge.py): whatever way
    this process ends, the office and its profile go with it.
    """

    def __init__(self, spec: PoolSpec, root: Path, index: int,
                 fonts_conf: Path | None = None) -> None:
        self.spec, self.index, self.fonts_conf = spec, index, fonts_conf
        self.root = root
        self.home = root / f"worker-{index}"
        self.office_pid: int | None = None
        self.bridge: subprocess.Popen | None = None
        self.conversions = 0
        self._buffer = b""

    @property
    def pid(self) -> int | None:
        """The soffice process group id (kill it to simulate a crash)."""
        return self.office_pid

    def start(self) -> None:
        """Start the bridge, which starts soffice; return once it is connected."""
        shutil.rmtree(self.home, ignore_errors=True)
        fresh_profile(self.home / "profile", self.spec.seed, self.spec.soffice)
        port = _free_port()
        # LibreOffice's own temporary files go in the worker's folder too: an office that is
        # killed leaves them behind, and the folder goes with the worker.
        scratch = self.home / "tmp"
        scratch.mkdir()
        env = {**_office_environment(), "SAL_USE_VCLPLUGIN": "svp", "HOME": str(self.home),
               "TMPDIR": str(scratch)}
        if self.fonts_conf is not None:
            env["FONTCONFIG_FILE"] = str(self.fonts_conf)
        config = {
            "office": [self.spec.soffice, "--headless", "--invisible", "--nologo",
                       "--norestore", "--nodefault", "--nolockcheck", "--nofirststartwizard",
                       f"-env:UserInstallation={(self.home / 'profile').as_uri()}",
                       f"--accept=socket,host=127.0.0.1,port={port},tcpNoDelay=1;urp;"
                       "StarOffice.ComponentContext"],
            "home": str(self.home), "root": str(self.root), "port": port,
            "owner": os.getpid(), "startup_timeout": self.spec.startup_timeout_s,
        }
        self.bridge = subprocess.Popen(
            [SYSTEM_PYTHON, "-I", str(BRIDGE), json.dumps(config)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            env=env, cwd=self.home, start_new_session=True)
        self._buffer = b""
        self.conversions = 0
        try:
            self.office_pid = self._read_line(10)["office"]
            hello = self._read_line(self.spec.startup_timeout_s + 5)
        except (TimeoutError, _WorkerDied, KeyError, ValueError):
            self.stop()
            raise ConversionError("LibreOffice 启动失败", "LibreOffice did not start") from None
        if not hello.get("ready"):
            self.stop()
            raise ConversionError(f"LibreOffice 启动失败：{hello.get('error')}",
                                  f"LibreOffice did not start: {hello.get('error')}")
        if self.spec.warmup is not None:
            try:
                self.convert(self.spec.warmup.read_bytes(), self.spec.startup_timeout_s)
            except (ConversionError, _WorkerDied):
                self.stop()
                raise ConversionError("LibreOffice 预热失败",
                                      "LibreOffice failed to warm up") from None
            self.conversions = 0

    def _read_line(self, timeout: float) -> dict:
        """Return the bridge's next JSON line. Raises TimeoutError or _WorkerDied (also
        when the worker is stopped meanwhile: its pool closed while it was starting)."""
        bridge = self.bridge
        if bridge is None or bridge.stdout is None:
            raise _WorkerDied("stopped")
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            try:
                fd = bridge.stdout.fileno()
                ready, _, _ = select.select([fd], [], [], remaining)
                chunk = os.read(fd, 1 << 16) if ready else None
            except (OSError, ValueError):  # closed by stop() in another thread
                raise _WorkerDied("stopped") from None
            if chunk is None:
                continue
            if not chunk:
                raise _WorkerDied("bridge closed its output")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return json.loads(line)

    def convert(self, docx: bytes, timeout: float) -> bytes:
        """Return the PDF/A-2b bytes of ``docx``. Raises ConversionTimeout (the worker must
        then be replaced), _WorkerDied, or ConversionError for a document LibreOffice
        refuses."""
        assert self.bridge and self.bridge.stdin
        if not self.alive():
            raise _WorkerDied("office process exited")
        try:
            self.bridge.stdin.write(json.dumps({"docx": len(docx)}).encode() + b"\n" + docx)
            self.bridge.stdin.flush()
            answer = self._read_line(timeout)
            pdf = Path(answer["pdf"]).read_bytes() if answer.get("ok") else b""
        except TimeoutError:
            raise ConversionTimeout(f"转换超时（超过 {timeout:g} 秒）",
                                    f"conversion timed out after {timeout:g} s") from None
        except (BrokenPipeError, OSError, ValueError) as exc:
            raise _WorkerDied(str(exc)) from None
        self.conversions += 1
        if answer.get("ok"):
            return pdf
        if answer.get("kind") == "office":
            raise _WorkerDied(answer.get("error", ""))
        error = answer.get("error", "")
        raise ConversionError(f"LibreOffice 无法转换此文档：{error}",
                              f"LibreOffice could not convert the document: {error}")

    def alive(self) -> bool:
        return bool(self.bridge and self.bridge.poll() is None
                    and self.office_pid and _child_running(self.office_pid, self.bridge.pid))

    def stop(self) -> None:
        """Kill soffice (its whole process group) and the bridge; remove the profile."""
        bridge, self.bridge = self.bridge, None
        if bridge is not None:
            if self.office_pid and _child_running(self.office_pid, bridge.pid):
                try:
                    os.killpg(self.office_pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            try:  # end of input: the bridge reaps the office and removes its folder
                assert bridge.stdin
                bridge.stdin.write(json.dumps({"stop": True}).encode() + b"\n")
                bridge.stdin.close()
            except (BrokenPipeError, OSError, ValueError):
                pass
            try:
                bridge.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(bridge.pid, signal.SIGKILL)
                bridge.wait()
            if bridge.stdout:
                bridge.stdout.close()
        self.office_pid = None
        shutil.rmtree(self.home, ignore_errors=True)


def _office_environment() -> dict[str, str]:
    """The environment LibreOffice and its bridge inherit: this process's, without what
    points Python at the virtual environment (the bridge runs Debian's own python3)."""
    return {key: value for key, value in os.environ.items()
            if not key.startswith(("PYTHON", "VIRTUAL_ENV"))}


def _child_running(pid: int, parent: int) -> bool:
    """Whether ``pid`` is a live (not zombie) child of ``parent``: a process id is only
    ever signalled after this check, never a process that merely reuses the number."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return False
    return fields[0] not in ("Z", "X") and int(fields[1]) == parent


class ConverterPool:
    """A thread-safe pool of warm LibreOffice workers; use as a context manager."""

    def __init__(self, spec: PoolSpec | None = None) -> None:
        self.spec = spec or PoolSpec()
        self._root: Path | None = None
        self._idle: queue.Queue[Worker] = queue.Queue()
        self._workers: list[Worker] = []
        self._closed = False
        self._starting: threading.Thread | None = None
        self._start_failed: ConversionError | None = None
        self.replaced = 0  # workers replaced after a crash, hang or recycle

    def start(self) -> ConverterPool:
        """Start every worker in parallel; return self once all are ready. Raises
        ConversionError if the pool is already closed."""
        if self._closed:  # a service stopped before its pool's background start began
            raise ConversionError("转换池已关闭", "the conversion pool is closed")
        self._root = Path(tempfile.mkdtemp(prefix="countersign-lo-"))
        _open_pools.add(self)
        profile_seed(self.spec.profile_cache, self.spec.soffice, create=True,
                     env=_office_environment())
        self._fonts_conf = fontconfig_file(self.spec.fonts_dir)
        self._workers = [Worker(self.spec, self._root, i, self._fonts_conf)
                         for i in range(self.spec.workers)]
        errors: list[BaseException] = []

        def boot(worker: Worker) -> None:
            try:
                worker.start()
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
                return
            self._keep_unless_closed(worker)

        threads = [threading.Thread(target=boot, args=(w,)) for w in self._workers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            self.close()
            raise errors[0]
        return self

    def start_in_background(self) -> ConverterPool:
        """Start the workers in a thread and return at once: a conversion waits for the
        first worker to be ready, and fails if the pool could not start."""
        def run() -> None:
            try:
                self.start()
            except ConversionError as exc:
                self._start_failed = exc

        self._starting = threading.Thread(target=run, daemon=True)
        self._starting.start()
        return self

    def __enter__(self) -> ConverterPool:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def workers(self) -> list[Worker]:
        """Return the current workers (for tests that kill one)."""
        return list(self._workers)

    def health(self) -> dict[str, object]:
        """Return {ok, size, alive, idle, replaced, closed}: ok while a worker is alive."""
        alive = sum(1 for worker in self._workers if worker.alive())
        return {"ok": alive > 0 and not self._closed, "size": self.spec.workers,
                "alive": alive, "idle": self._idle.qsize(), "replaced": self.replaced,
                "closed": self._closed}

    def _replace(self, worker: Worker) -> None:
        """Restart ``worker`` and put it back in the idle queue (runs in its own thread)."""
        worker.stop()
        self.replaced += 1
        for attempt in range(3):
            if self._closed:
                return
            try:
                worker.start()
                self._keep_unless_closed(worker)
                return
            except ConversionError:
                log.warning("LibreOffice worker %s failed to restart (attempt %s)",
                            worker.index, attempt + 1)
                time.sleep(1)
        log.error("LibreOffice worker %s could not be restarted", worker.index)

    def _keep_unless_closed(self, worker: Worker) -> None:
        """Put a freshly started ``worker`` in the idle queue, or stop it if the pool was
        closed meanwhile (close() stopped the workers before this one's office existed)."""
        if self._closed:
            worker.stop()
            if self._root is not None:  # its start may have made the folder again
                shutil.rmtree(self._root, ignore_errors=True)
        else:
            self._idle.put(worker)

    def _replace_in_background(self, worker: Worker) -> None:
        threading.Thread(target=self._replace, args=(worker,), daemon=True).start()

    def convert(self, docx: bytes, timeout: float | None = None) -> bytes:
        """Return the PDF/A-2b bytes of ``docx``.

        Raises NotADocx for input that is not a safe .docx, ConversionTimeout when the
        conversion takes longer than ``timeout`` (default: the pool's), ConversionError when
        LibreOffice refuses the document or keeps crashing on it.
        """
        if self._closed:
            raise ConversionError("转换池已关闭", "the conversion pool is closed")
        check_docx(docx)
        timeout = timeout or self.spec.timeout_s
        for _attempt in range(3):
            worker = self._take(timeout)
            try:
                pdf = worker.convert(docx, timeout)
            except ConversionTimeout:
                self._replace_in_background(worker)
                raise
            except _WorkerDied:
                log.warning("LibreOffice worker %s died; replacing it and retrying",
                            worker.index)
                self._replace_in_background(worker)
                continue
            except ConversionError:
                self._release(worker)
                raise
            self._release(worker)
            if not pdf.startswith(b"%PDF-"):
                raise ConversionError("LibreOffice 未生成 PDF", "LibreOffice produced no PDF")
            return pdf
        raise ConversionError("LibreOffice 反复崩溃，无法转换此文档",
                              "LibreOffice kept crashing on this document")

    def _take(self, timeout: float) -> Worker:
        # Starting or replacing a worker takes a few seconds: wait for it beyond the
        # conversion timeout.
        deadline = time.monotonic() + timeout + self.spec.startup_timeout_s
        while True:
            if self._start_failed is not None:
                raise self._start_failed
            if self._closed:  # closed while this conversion waited for a worker
                raise ConversionError("转换池已关闭", "the conversion pool is closed")
            try:
                return self._idle.get(timeout=min(0.25, max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                if time.monotonic() >= deadline:
                    raise ConversionError("没有可用的 LibreOffice 进程",
                                          "no LibreOffice worker became available") from None

    def _release(self, worker: Worker) -> None:
        if worker.conversions >= self.spec.recycle_after or not worker.alive():
            self._replace_in_background(worker)
        else:
            self._idle.put(worker)

    def close(self) -> None:
        """Stop every worker (in parallel) and remove their profiles."""
        self._closed = True
        if self._starting is not None and self._starting is not threading.current_thread():
            self._starting.join()
        stoppers = [threading.Thread(target=worker.stop) for worker in self._workers]
        for thread in stoppers:
            thread.start()
        for thread in stoppers:
            thread.join()
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)
        _open_pools.discard(self)


# Pools still open when the interpreter exits normally are closed then; when it does not
# (SIGTERM, SIGKILL), each bridge cleans up after its owner.
_open_pools: weakref.WeakSet[ConverterPool] = weakref.WeakSet()


@atexit.register
def _close_open_pools() -> None:
    for pool in list(_open_pools):
        pool.close()
