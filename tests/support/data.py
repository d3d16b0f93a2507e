"""Data folders for the tests."""

from __future__ import annotations

from pathlib import Path

from pipeline.config import Settings
from pipeline.people.parties import get_party
from pipeline.people.setup import initialise
from pipeline.record import keyring


def initialised(data_dir: Path, **overrides) -> Settings:
    """Return Settings for ``data_dir`` (with ``overrides``) after ``init``: ledger, local CA
    and the demo parties, whose key passphrase is ``demo``."""
    settings = Settings(data_dir=data_dir, **overrides)
    initialise(settings)
    return settings


def party_p12(settings: Settings, party_id: str) -> bytes:
    """Return the PKCS#12 of ``party_id`` as the application keeps it (in the store)."""
    return keyring.party_key(settings, get_party(settings, party_id).key_file)
