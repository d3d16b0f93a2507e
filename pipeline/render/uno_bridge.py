"""One LibreOffice process and its conversion loop, run by Debian's /usr/bin/python3 (it has
``uno``).

The pool (pipeline/render/libreoffice.py) starts one bridge per worker with a JSON
configuration as its argument: the office command line, the worker's folder, the UNO port,
the owner's process id. The bridge starts ``soffice`` in a session of its own, prints
``{"office": PID}``, connects over the UNO socket and prints ``{"ready": true}``. Then, for
each request — a JSON line ``{"docx": N}`` followed by N bytes of .docx on stdin — it converts
and answers a JSON line, ``{"ok": true, "pdf": PATH}`` (the PDF, written to a file of the
worker's folder that the next conversion overwrites), or
``{"ok": false, "kind": "load"|"export"|"office", "error": "..."}``.
``kind == "office"`` means the office process is gone: the pool replaces it. ``{"stop": true}``
ends the bridge and its office.

The bridge is also the office's watchdog: LibreOffice must never outlive the process that
owns the pool. When the owner goes away — stdin ends without a stop, or the bridge's parent
process changes (the owner was killed, even with SIGKILL) — or the bridge gets SIGTERM, it
kills the office's process group, waits for it, and removes the worker's folder (and the
pool's folder once it is empty).

This file must run on the system interpreter, so it uses only the standard library and uno.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import uno  # noqa: I001  (system package python3-uno)
from com.sun.star.beans import PropertyValue
from com.sun.star.connection import NoConnectException
from com.sun.star.io import IOException
from com.sun.star.lang import DisposedException, IllegalArgumentException
from com.sun.star.uno import RuntimeException

NO_UPDATE = 0  # com.sun.star.document.UpdateDocMode.NO_UPDATE: never refresh links
NEVER_EXECUTE = 0  # com.sun.star.document.MacroExecMode.NEVER_EXECUTE
PDF_A_2B = 2  # writer_pdf_Export SelectPdfVersion: PDF/A-2b
# PDF/A-2b is all the export needs: LibreOffice then embeds every font and tags the PDF by
# itself (measured: the same output and time with or without asking for either).
PDF_FILTER = {"SelectPdfVersion": PDF_A_2B, "ExportBookmarks": False, "ExportNotes": False}
WATCH_INTERVAL_S = 0.2
ABANDON_WAIT_S = 10.0


def props(**values):
    out = []
    for name, value in values.items():
        prop = PropertyValue()
        prop.Name, prop.Value = name, value
        out.append(prop)
    return tuple(out)


class Office:
    """The soffice process this bridge owns, and the cleanup when it must go."""

    def __init__(self, config):
        self.config = config
        self.process = None
        self._cleaned = threading.Lock()

    def start(self):
        self.process = subprocess.Popen(
            self.config["office"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True, cwd=self.config["home"])
        return self.process.pid

    def clean_up(self):
        """Kill the office's process group, reap it, remove the worker's folder; once."""
        if not self._cleaned.acquire(blocking=False):
            return
        if self.process is not None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                pass
        shutil.rmtree(self.config["home"], ignore_errors=True)

    def abandon(self):
        """The owner is gone: clean up, and remove the pool's folder once no worker is left
        in it (every bridge of the pool is doing the same; the last one gets to remove it)."""
        self.clean_up()
        root = self.config["root"]
        deadline = time.monotonic() + ABANDON_WAIT_S
        while time.monotonic() < deadline:
            try:
                os.rmdir(root)
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.1)


def watch_owner(office, owner):
    """Exit, cleaning up, as soon as the owner process is gone."""
    while True:
        if os.getppid() != owner:
            office.abandon()
            os._exit(0)
        time.sleep(WATCH_INTERVAL_S)


def connect(port, deadline):
    local = uno.getComponentContext()
    resolver = local.ServiceManager.createInstanceWithContext(
        "com.sun.star.bridge.UnoUrlResolver", local)
    url = f"uno:socket,host=127.0.0.1,port={port};urp;StarOffice.ComponentContext"
    while True:
        try:
            return resolver.resolve(url)
        except NoConnectException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class Converter:
    """Converts .docx bytes to PDF/A bytes in one office, reusing one hidden frame: creating
    and disposing a frame per document costs about a tenth of the office's time."""

    def __init__(self, ctx, home):
        self.ctx = ctx
        self.sources = [os.path.join(home, f"document-{index}.docx") for index in (0, 1)]
        # The PDF goes to a file the pool reads: handing 100 kB back over the UNO socket and
        # this bridge's pipe cost more of this process's time than the rest of a conversion.
        self.result = os.path.join(home, "document.pdf")
        self.result_url = uno.systemPathToFileUrl(self.result)
        self.turn = 0
        self.smgr = ctx.ServiceManager
        self.desktop = self.smgr.createInstanceWithContext("com.sun.star.frame.Desktop", ctx)
        self.frame = None
        self.document = None
        self.filter_data = uno.Any("[]com.sun.star.beans.PropertyValue", props(**PDF_FILTER))

    def convert(self, docx):
        # Loaded from a file of the worker's own folder, not from memory: a document read
        # from a stream has no URL, and LibreOffice trusts links in a document without one
        # (the profile's BlockUntrustedRefererLinks would not apply).
        # Two names in turn: a frame asked to load the URL it already shows would keep the
        # document it has instead of reading the new one.
        self.turn = 1 - self.turn
        source = self.sources[self.turn]
        with open(source, "wb") as handle:
            handle.write(docx)
        load = props(Hidden=True, ReadOnly=True, FilterName="MS Word 2007 XML",
                     UpdateDocMode=NO_UPDATE, MacroExecutionMode=NEVER_EXECUTE, Silent=True)
        url = uno.systemPathToFileUrl(source)
        try:
            if self.frame is None:
                document = self.desktop.loadComponentFromURL(url, "_blank", 0, load)
            else:
                document = self.frame.loadComponentFromURL(url, "_self", 0, load)
        except (IllegalArgumentException, IOException) as exc:
            self.drop_frame()
            return {"ok": False, "kind": "load", "error": exc.Message or type(exc).__name__}
        if document is None:
            self.drop_frame()
            return {"ok": False, "kind": "load", "error": "LibreOffice could not open the document"}
        # The frame now shows the new document; the previous one must still be closed, or
        # it stays in memory (measured: twice the growth per document).
        previous, self.document = self.document, document
        if previous is not None:
            try:
                previous.close(True)
            except Exception:  # noqa: BLE001 - already gone with its frame
                pass
        if self.frame is None:  # documents after the first load into the same frame
            self.frame = document.getCurrentController().getFrame()
        try:
            uno.invoke(document, "storeToURL", (self.result_url, props(
                FilterName="writer_pdf_Export", FilterData=self.filter_data, Overwrite=True)))
        except IOException as exc:
            self.drop_frame()
            return {"ok": False, "kind": "export", "error": exc.Message or "export failed"}
        return {"ok": True, "pdf": self.result}

    def drop_frame(self):
        """Close the reused frame (after a failure it may hold a half-loaded document)."""
        frame, self.frame, self.document = self.frame, None, None
        if frame is not None:
            try:
                frame.close(True)
            except Exception:  # noqa: BLE001 - a frame that will not close dies with its office
                pass


def read_exactly(stream, size):
    data = stream.read(size)
    if data is None or len(data) != size:
        raise EOFError
    return data


def answer(out, reply):
    out.write(json.dumps(reply).encode() + b"\n")
    out.flush()


def main():
    config = json.loads(sys.argv[1])
    office = Office(config)
    signal.signal(signal.SIGTERM, lambda *_: (office.abandon(), os._exit(0)))
    threading.Thread(target=watch_owner, args=(office, config["owner"]), daemon=True).start()
    out = sys.stdout.buffer
    answer(out, {"office": office.start()})
    try:
        ctx = connect(config["port"], time.monotonic() + config["startup_timeout"])
        converter = Converter(ctx, config["home"])
    except Exception as exc:  # noqa: BLE001
        answer(out, {"ready": False, "error": str(exc)})
        office.clean_up()
        return 1
    answer(out, {"ready": True})
    source = sys.stdin.buffer
    try:
        for line in source:
            request = json.loads(line)
            if request.get("stop"):  # the pool is done with this worker
                office.clean_up()
                return 0
            docx = read_exactly(source, request["docx"])
            try:
                reply = converter.convert(docx)
            except (DisposedException, RuntimeException) as exc:
                answer(out, {"ok": False, "kind": "office", "error": str(exc)})
                office.clean_up()
                return 1
            answer(out, reply)
    except (EOFError, BrokenPipeError, ValueError):
        pass
    # End of input without a stop: the owner is gone.
    office.abandon()
    return 0


if __name__ == "__main__":
    sys.exit(main())
