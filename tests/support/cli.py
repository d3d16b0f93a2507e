"""The ``countersign`` command installed beside the interpreter running the tests."""

from __future__ import annotations

import sys
from pathlib import Path

COUNTERSIGN = str(Path(sys.executable).with_name("countersign"))
