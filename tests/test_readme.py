"""The README's examples run as written, against a fresh data folder."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def shell_blocks(section: str) -> list[str]:
    """Return the ```sh blocks of one README section (## heading)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    body = text.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)```", body, flags=re.DOTALL)


def test_a_documents_life_runs_as_written(tmp_path):
    blocks = shell_blocks("A document's life")
    assert len(blocks) == 2
    script = "set -euo pipefail\n" + "\n".join(blocks) + (
        'countersign status "$DOC" --json > "$OUT/first.json"\n'
        'countersign status "$NEXT" --json > "$OUT/next.json"\n'
        'countersign status "$ISSUE" --json > "$OUT/issue.json"\n')
    env = {**os.environ, "COUNTERSIGN_DATA": str(tmp_path / "data"),
           "COUNTERSIGN_PASSPHRASE": "demo", "OUT": str(tmp_path),
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    result = subprocess.run(["bash", "-c", script], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=1200)
    assert result.returncode == 0, result.stderr[-3000:]
    import json

    first, following, issue = (json.loads((tmp_path / f"{name}.json").read_text())
                               for name in ("first", "next", "issue"))
    assert first["status"] == "superseded" and first["superseded_by"] == following["id"]
    assert following["status"] == "voided" and following["number"].endswith(" 第2版")
    assert issue["status"] == "closed"
    assert [p["text"] for p in issue["progress"]] == ["回归测试通过"]
