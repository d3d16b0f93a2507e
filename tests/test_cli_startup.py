"""``countersign --help`` loads no heavy module: pyHanko, the LibreOffice pool, FastAPI,
uvicorn, python-docx and SQLAlchemy are imported only inside the commands that use them."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("pyhanko", "fastapi", "uvicorn", "docx", "docxtpl", "pipeline.render.libreoffice",
         "pipeline.documents.repository", "api", "sqlalchemy")


def test_help_imports_nothing_heavy():
    probe = ("import sys\n"
             "from pipeline.cli import main\n"
             "try:\n"
             "    main(['--help'])\n"
             "except SystemExit:\n"
             "    pass\n"
             f"print(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r} "
             f"or m in {HEAVY!r}))\n")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert "Countersign: formal documents" in result.stdout
    assert result.stdout.strip().splitlines()[-1] == "[]"
