"""One LibreOffice process's conversion loop, run by Debian's /usr/bin/python3 (it has ``uno``).

The pool (pipeline/conversion.py) starts one bridge per soffice process. The bridge connects
over the UNO socket, prints ``{"ready": true}``, then for each JSON line on stdin
``{"in": DOCX_PATH, "out": PDF_PATH}`` converts and answers one JSON line:
``{"ok": true}`` or ``{"ok": false, "kind": "load"|"export"|"office", "error": "..."}``.
``kind == "office"`` means the office process is gone: the pool replaces it.

This file must run on the system interpreter, so it uses only the standard library and uno.
"""

import json
import sys
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


def props(**values):
    out = []
    for name, value in values.items():
        prop = PropertyValue()
        prop.Name, prop.Value = name, value
        out.append(prop)
    return tuple(out)


def connect(port, deadline):
    local = uno.getComponentContext()
    resolver = local.ServiceManager.createInstanceWithContext(
        "com.sun.star.bridge.UnoUrlResolver", local)
    url = f"uno:socket,host=127.0.0.1,port={port};urp;StarOffice.ComponentContext"
    while True:
        try:
            ctx = resolver.resolve(url)
            return ctx.ServiceManager.createInstanceWithContext("com.sun.star.frame.Desktop", ctx)
        except NoConnectException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def convert(desktop, src, dst):
    load = props(Hidden=True, ReadOnly=True, FilterName="MS Word 2007 XML",
                 UpdateDocMode=NO_UPDATE, MacroExecutionMode=NEVER_EXECUTE, Silent=True)
    try:
        document = desktop.loadComponentFromURL(uno.systemPathToFileUrl(src), "_blank", 0, load)
    except (IllegalArgumentException, IOException) as exc:
        return {"ok": False, "kind": "load", "error": exc.Message or type(exc).__name__}
    if document is None:
        return {"ok": False, "kind": "load", "error": "LibreOffice could not open the document"}
    try:
        filter_data = uno.Any("[]com.sun.star.beans.PropertyValue", props(
            SelectPdfVersion=PDF_A_2B, EmbedStandardFonts=True, UseTaggedPDF=True,
            ExportBookmarks=False, ExportNotes=False))
        store = props(FilterName="writer_pdf_Export", FilterData=filter_data)
        uno.invoke(document, "storeToURL", (uno.systemPathToFileUrl(dst), store))
        return {"ok": True}
    except IOException as exc:
        return {"ok": False, "kind": "export", "error": exc.Message or "export failed"}
    finally:
        try:
            document.close(True)
        except Exception:  # noqa: BLE001 - a document that will not close dies with its office
            pass


def main():
    port = int(sys.argv[1])
    startup_timeout = float(sys.argv[2]) if len(sys.argv) > 2 else 60.0
    try:
        desktop = connect(port, time.monotonic() + startup_timeout)
    except Exception as exc:  # noqa: BLE001
        print(json.dumps({"ready": False, "error": str(exc)}), flush=True)
        return 1
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        try:
            answer = convert(desktop, request["in"], request["out"])
        except (DisposedException, RuntimeException) as exc:
            print(json.dumps({"ok": False, "kind": "office", "error": str(exc)}), flush=True)
            return 1
        print(json.dumps(answer), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
