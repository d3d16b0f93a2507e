"""Data folders for the tests."""

from __future__ import annotations

from pathlib import Path

from pipeline.config import Settings
from pipeline.people.setup import initialise


def initialised(data_dir: Path, **overrides) -> Settings:
    """Return Settings for ``data_dir`` (with ``overrides``) after ``init``: ledger, local CA
    and the demo parties, whose key passphrase is ``demo``."""
    settings = Settings(data_dir=data_dir, **overrides)
    initialise(settings)
    return settings
