"""The first start: the data folder, its database and local CA, and the demo parties with
their web tokens (so a new install is usable from the browser at once).

The data folder holds keys, token hashes and everyone's documents (the keys and documents in
its ``keys/`` and ``store/`` unless a shared store is configured): it is 0700 and its files
0600, made so at the first start and tightened again whenever the service starts (an older
install, or a restore with a loose umask).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipeline.config import Settings
from pipeline.people.access import Role, create_token
from pipeline.people.parties import DEMO_PARTIES, DEMO_PASSPHRASE, Party, add_party, list_parties
from pipeline.record import database, keyring
from pipeline.record.backends import open_store


@dataclass(frozen=True)
class InitResult:
    data_dir: Path
    created_ca: bool
    demo_parties: tuple[Party, ...]
    demo_tokens: dict[str, str]
    store: str = ""
    keys: str = ""


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
    """Create the data folder and database; make the store ready (an S3 bucket is created
    with Object Lock, or refused without it) with the local CA in it unless it holds one;
    on the first run, the demo parties.

    Safe to run again: nothing existing is replaced.
    """
    keyring.ca_passphrase(settings)  # a shared store without one: refused before anything
    store = open_store(settings)
    store.prepare()
    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    database.connect(settings.database).close()
    # The CA and the keys live in the store: a second machine with an empty data folder
    # finds the first one's there (and an older data folder's are moved into it).
    created_ca = keyring.ensure_ca(settings, store)
    keyring.move_legacy_keys(settings, store)
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
                      settings.store_url or str(settings.data_dir / "store"),
                      store.keys_location)
