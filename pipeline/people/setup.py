"""The first start: the data folder, its database and local CA, and the demo parties with
their web tokens (so a new install is usable from the browser at once).

The data folder holds keys, token hashes and everyone's documents: it is 0700 and its files
0600, made so at the first start and tightened again whenever the service starts (an older
install, or a restore with a loose umask).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipeline.config import Settings
from pipeline.people.access import Role, create_token
from pipeline.people.parties import DEMO_PARTIES, DEMO_PASSPHRASE, Party, add_party, list_parties
from pipeline.record import database
from pipeline.record.backends import open_store
from signing.ca import LocalCA


@dataclass(frozen=True)
class InitResult:
    data_dir: Path
    created_ca: bool
    demo_parties: tuple[Party, ...]
    demo_tokens: dict[str, str]
    store: str = ""


def secure_data_folder(settings: Settings) -> None:
    """Make the data folder and every folder in it 0700 and every file 0600 (archived
    revisions stay read-only, 0400)."""
    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    settings.data_dir.chmod(0o700)
    for path in settings.data_dir.rglob("*"):
        if path.is_symlink():
            continue
        mode = path.stat().st_mode & 0o777
        if path.is_dir():
            path.chmod(0o700)
        elif mode & 0o077:
            path.chmod(mode & 0o700)


def initialise(settings: Settings) -> InitResult:
    """Create the data folder: database, local CA and (on first run) the demo parties; make
    the store ready (an S3 bucket is created with Object Lock, or refused without it).

    Safe to run again: nothing existing is replaced.
    """
    store = open_store(settings)
    store.prepare()
    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    database.connect(settings.database).close()
    created_ca = not LocalCA.exists(settings.ca_dir)
    if created_ca:
        LocalCA.create(settings.ca_dir, settings.ca_passphrase or None)
    demo: list[Party] = []
    tokens: dict[str, str] = {}
    if not list_parties(settings):
        for party_id, name, dept, email in DEMO_PARTIES:
            demo.append(add_party(settings, name=name, dept=dept, email=email,
                                  party_id=party_id, issue_cert=True,
                                  passphrase=DEMO_PASSPHRASE))
            tokens[party_id] = create_token(settings, Role.PARTY, party_id, label="demo")
        # A demo install must be usable from the browser at once: one admin token too.
        tokens["admin"] = create_token(settings, Role.ADMIN, label="demo admin")
    secure_data_folder(settings)
    return InitResult(settings.data_dir, created_ca, tuple(demo), tokens,
                      settings.store_url or str(settings.data_dir / "store"))
