"""The ``countersign`` command installed beside the interpreter running the tests."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from pipeline.config import Settings

COUNTERSIGN = str(Path(sys.executable).with_name("countersign"))


def environment(settings: Settings, **extra: str) -> dict[str, str]:
    """Return the environment for a command run on ``settings``' data: this process's, with
    the test's database URL (when its records live in PostgreSQL) and ``extra``."""
    env = {**os.environ, **extra}
    if settings.database_url:
        env["COUNTERSIGN_DATABASE_URL"] = settings.database_url
    return env
