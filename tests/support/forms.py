"""The example forms (one valid form per template, ``examples/`` at the top) and template keys."""

from __future__ import annotations

import json
from pathlib import Path

# The forms of the README, one valid form per template (the repository's examples/).
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
TEMPLATE_KEYS = ("requirement_confirmation", "progress_sync", "issue_tracking",
                 "meeting_minutes")


def example(key: str) -> dict:
    """Return a fresh copy of the example form of template ``key``."""
    return json.loads((EXAMPLES / f"{key}.json").read_text(encoding="utf-8"))
