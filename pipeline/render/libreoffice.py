""".docx → PDF/A-2b through a pool of warm LibreOffice processes.

Each worker is one ``soffice`` with its own user profile and UNO port, driven by a bridge
process on Debian's Python (``pipeline/uno_bridge.py``). A conversion that exceeds its timeout
kills that worker; a worker that crashes is replaced and the document retried on a fresh one,
so one bad process never fails other requests; a worker that has done ``recycle_after``
conversions is replaced to keep LibreOffice's memory in check.

LibreOffice never reaches the network: each profile blocks untrusted referer links and link
updates, documents load with ``UpdateDocMode=NO_UPDATE`` and macros off, and a .docx that
declares external parts other than hyperlinks is refused before LibreOffice sees it.
"""

from __future__ import annotations

import io
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
import zipfile
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree

from pipeline.errors import ConversionError, ConversionTimeout, NotADocx

log = logging.getLogger(__name__)

SYSTEM_PYTHON = "/usr/bin/python3"
BRIDGE = Path(__file__).with_name("uno_bridge.py")
MAX_DOCX_BYTES = 50 * 1024 * 1024
MAX_DOCX_UNPACKED = 400 * 1024 * 1024
HYPERLINK_REL = (
    "http://schemas.openxmlformats.org/officeDocument/2006/relationships/hyperlink"
)

# (configuration path, property, value) written into every worker's fresh profile.
PROFILE_SETTINGS = (
    ("org.openoffice.Office.Common/Security/Scripting", "BlockUntrustedRefererLinks", "true"),
    ("org.openoffice.Office.Common/Security/Scripting", "MacroSecurityLevel", "3"),
    ("org.openoffice.Office.Common/Security/Scripting", "DisableMacrosExecution", "true"),
    ("org.openoffice.Office.Writer/Content/Update", "Link", "2"),  # never update links
    ("org.openoffice.Office.Common/Misc", "UseLocking", "false"),
    ("org.openoffice.Office.Common/Misc", "FirstRun", "false"),
    ("org.openoffice.Office.Common/Misc", "ShowTipOfTheDay", "false"),
    ("org.openoffice.Office.Common/Save/Document", "CreateBackup", "false"),
    ("org.openoffice.Office.Recovery/AutoSave", "Enabled", "false"),
    ("org.openoffice.Office.Recovery/RecoveryInfo", "Enabled", "false"),
)


def profile_xcu() -> str:
    """Return registrymodifications.xcu holding PROFILE_SETTINGS."""
    items = "".join(
        f'<item oor:path="/{path}"><prop oor:name="{name}" oor:op="fuse">'
        f"<value>{value}</value></prop></item>\n"
        for path, name, value in PROFILE_SETTINGS
    )
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            '<oor:items xmlns:oor="http://openoffice.org/2001/registry" '
            'xmlns:xs="http://www.w3.org/2001/XMLSchema" '
            'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">\n'
            f"{items}</oor:items>\n")


@dataclass(frozen=True)
class PoolSpec:
    """How the pool runs: ``size`` 0 means one process per core."""

    size: int = 0
    timeout_s: float = 60.0
    recycle_after: int = 200
    startup_timeout_s: float = 60.0
    soffice: str = "soffice"
    # A .docx converted once by every fresh worker before it takes work, so that the first
    # real document does not pay for loading fonts and filters (about twice the usual time).
    warmup: Path | None = None

    @property
    def workers(self) -> int:
        return self.size or max(1, os.cpu_count() or 1)


def check_docx(data: bytes) -> None:
    """Raise NotADocx unless ``data`` is a .docx LibreOffice may safely open.

    Checks: a ZIP archive, not oversized when unpacked, with a parseable
    ``word/document.xml``, and no external part (linked image, template, OLE object)
    that would make the converter reach out to the network.
    """
    if len(data) > MAX_DOCX_BYTES:
        raise NotADocx(f"文档过大（{len(data)} 字节）", f"document too large ({len(data)} bytes)")
    if not data.startswith(b"PK"):
        raise NotADocx("不是 .docx 文件（不是 ZIP 压缩包）", "not a .docx file (not a ZIP archive)")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = archive.namelist()
            if sum(info.file_size for info in archive.infolist()) > MAX_DOCX_UNPACKED:
                raise NotADocx("文档解压后过大", "document is too large when unpacked")
            if "word/document.xml" not in names:
                raise NotADocx("不是 Word 文档（缺少 word/document.xml）",
                               "not a Word document (no word/document.xml)")
            ElementTree.fromstring(archive.read("word/document.xml"))
            for name in names:
                if name.endswith(".rels"):
                    _refuse_external_parts(name, archive.read(name))
    except NotADocx:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, KeyError) as exc:
        raise NotADocx(f".docx 文件已损坏：{exc}", f"corrupt .docx: {exc}") from None
    except ElementTree.ParseError as exc:
        raise NotADocx(f".docx 正文 XML 损坏：{exc}",
                       f"corrupt .docx: document.xml is not well-formed: {exc}") from None


def _refuse_external_parts(name: str, xml: bytes) -> None:
    try:
        root = ElementTree.fromstring(xml)
    except ElementTree.ParseError as exc:
        raise NotADocx(f".docx 关系文件 {name} 损坏",
                       f"corrupt relationships {name}: {exc}") from None
    for rel in root:
        if rel.get("TargetMode") == "External" and rel.get("Type") != HYPERLINK_REL:
            raise NotADocx(
                f"文档引用了外部资源 {rel.get('Target')!r}，转换时不允许联网",
                f"document links an external resource {rel.get('Target')!r}; "
                "conversion never fetches from the network")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _WorkerDied(Exception):
    """The office process or its bridge is gone; the document may be retried elsewhere."""


class Worker:
    """One soffice process with its own profile and port, and the bridge that drives it."""

    def __init__(self, spec: PoolSpec, root: Path, index: int) -> None:
        self.spec, self.index = spec, index
        self.home = root / f"worker-{index}"
        self.office: subprocess.Popen | None = None
        self.bridge: subprocess.Popen | None = None
        self.conversions = 0
        self._buffer = b""

    @property
    def pid(self) -> int | None:
        """The soffice process group id (kill it to simulate a crash)."""
        return self.office.pid if self.office else None

    def start(self) -> None:
        """Start soffice and the bridge; return once the bridge is connected."""
        shutil.rmtree(self.home, ignore_errors=True)
        user = self.home / "profile" / "user"
        user.mkdir(parents=True)
        (user / "registrymodifications.xcu").write_text(profile_xcu(), encoding="utf-8")
        port = _free_port()
        env = {**os.environ, "SAL_USE_VCLPLUGIN": "svp", "HOME": str(self.home)}
        env.pop("PYTHONPATH", None)
        self.office = subprocess.Popen(
            [self.spec.soffice, "--headless", "--invisible", "--nologo", "--norestore",
             "--nodefault", "--nolockcheck", "--nofirststartwizard",
             f"-env:UserInstallation={(self.home / 'profile').as_uri()}",
             f"--accept=socket,host=127.0.0.1,port={port},tcpNoDelay=1;urp;"
             "StarOffice.ComponentContext"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True, env=env, cwd=self.home)
        bridge_env = {key: value for key, value in env.items()
                      if not key.startswith(("PYTHON", "VIRTUAL_ENV"))}
        self.bridge = subprocess.Popen(
            [SYSTEM_PYTHON, "-I", str(BRIDGE), str(port), str(self.spec.startup_timeout_s)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            env=bridge_env, start_new_session=True)
        self._buffer = b""
        self.conversions = 0
        try:
            hello = self._read_line(self.spec.startup_timeout_s + 5)
        except (TimeoutError, _WorkerDied):
            self.stop()
            raise ConversionError("LibreOffice 启动失败", "LibreOffice did not start") from None
        if not hello.get("ready"):
            self.stop()
            raise ConversionError(f"LibreOffice 启动失败：{hello.get('error')}",
                                  f"LibreOffice did not start: {hello.get('error')}")
        if self.spec.warmup is not None:
            try:
                self.convert(self.spec.warmup, self.home / "warmup.pdf",
                             self.spec.startup_timeout_s)
            except (ConversionError, _WorkerDied):
                self.stop()
                raise ConversionError("LibreOffice 预热失败",
                                      "LibreOffice failed to warm up") from None
            self.conversions = 0

    def _read_line(self, timeout: float) -> dict:
        assert self.bridge and self.bridge.stdout
        fd = self.bridge.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            ready, _, _ = select.select([fd], [], [], remaining)
            if not ready:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                raise _WorkerDied("bridge closed its output")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return json.loads(line)

    def convert(self, src: Path, dst: Path, timeout: float) -> None:
        """Convert ``src`` to ``dst``. Raises ConversionTimeout (the worker must then be
        replaced), _WorkerDied, or ConversionError for a document LibreOffice refuses."""
        assert self.bridge and self.bridge.stdin
        if self.office is None or self.office.poll() is not None:
            raise _WorkerDied("office process exited")
        try:
            self.bridge.stdin.write(json.dumps({"in": str(src), "out": str(dst)}).encode() + b"\n")
            self.bridge.stdin.flush()
            answer = self._read_line(timeout)
        except TimeoutError:
            raise ConversionTimeout(f"转换超时（超过 {timeout:g} 秒）",
                                    f"conversion timed out after {timeout:g} s") from None
        except (BrokenPipeError, OSError, ValueError) as exc:
            raise _WorkerDied(str(exc)) from None
        self.conversions += 1
        if answer.get("ok"):
            return
        if answer.get("kind") == "office":
            raise _WorkerDied(answer.get("error", ""))
        error = answer.get("error", "")
        raise ConversionError(f"LibreOffice 无法转换此文档：{error}",
                              f"LibreOffice could not convert the document: {error}")

    def alive(self) -> bool:
        return bool(self.office and self.office.poll() is None
                    and self.bridge and self.bridge.poll() is None)

    def stop(self) -> None:
        """Kill soffice (its whole process group) and the bridge; remove the profile."""
        for proc in (self.bridge, self.office):
            if proc and proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait()
        if self.bridge and self.bridge.stdin:
            self.bridge.stdin.close()
        if self.bridge and self.bridge.stdout:
            self.bridge.stdout.close()
        self.office = self.bridge = None
        shutil.rmtree(self.home, ignore_errors=True)


class ConverterPool:
    """A thread-safe pool of warm LibreOffice workers; use as a context manager."""

    def __init__(self, spec: PoolSpec | None = None) -> None:
        self.spec = spec or PoolSpec()
        self._root = Path(tempfile.mkdtemp(prefix="countersign-lo-"))
        self._idle: queue.Queue[Worker] = queue.Queue()
        self._workers: list[Worker] = []
        self._closed = False
        self.replaced = 0  # workers replaced after a crash, hang or recycle

    def start(self) -> ConverterPool:
        """Start every worker in parallel; return self once all are ready. Raises
        ConversionError if the pool is already closed."""
        if self._closed:  # a service stopped before its pool's background start began
            raise ConversionError("转换池已关闭", "the conversion pool is closed")
        self._workers = [Worker(self.spec, self._root, i) for i in range(self.spec.workers)]
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
        with tempfile.TemporaryDirectory(dir=self._root) as scratch:
            src, dst = Path(scratch, "in.docx"), Path(scratch, "out.pdf")
            src.write_bytes(docx)
            for _attempt in range(3):
                worker = self._take(timeout)
                try:
                    worker.convert(src, dst, timeout)
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
                try:
                    return dst.read_bytes()
                except FileNotFoundError:
                    raise ConversionError("LibreOffice 未生成 PDF",
                                          "LibreOffice produced no PDF") from None
        raise ConversionError("LibreOffice 反复崩溃，无法转换此文档",
                              "LibreOffice kept crashing on this document")

    def _take(self, timeout: float) -> Worker:
        # Replacement can take a few seconds; wait for it beyond the conversion timeout.
        try:
            return self._idle.get(timeout=timeout + self.spec.startup_timeout_s)
        except queue.Empty:
            raise ConversionError("没有可用的 LibreOffice 进程",
                                  "no LibreOffice worker became available") from None

    def _release(self, worker: Worker) -> None:
        if worker.conversions >= self.spec.recycle_after or not worker.alive():
            self._replace_in_background(worker)
        else:
            self._idle.put(worker)

    def close(self) -> None:
        """Stop every worker and remove their profiles."""
        self._closed = True
        for worker in self._workers:
            worker.stop()
        shutil.rmtree(self._root, ignore_errors=True)
