"""Keys in the store: the parties' PKCS#12s and the local CA, reachable from every process
that signs on every machine, with no local folder shared between them.

Under the store's ``keys/`` (``data/keys`` on disk, ``s3://bucket/prefix/keys/`` in S3):

- ``<party>-<random>.p12`` — a party's key and certificate, a PKCS#12 under the party's own
  passphrase. The parties table's ``key_file`` names it (``keys/…``). A new key gets a new
  name, so an object never changes once written: two machines adding a party at once cannot
  overwrite each other's key, and a process may keep the bytes it read.
- ``ca/current`` — the name of the local CA's generation; ``ca/<generation>/`` its files:
  certificates, keys (PKCS#8 PEM encrypted under the CA passphrase), CRLs, the system's
  PKCS#12. A CA is several objects and two machines may run ``init`` at the same moment:
  each writes a whole CA under a fresh generation and then creates ``ca/current`` only if
  there is none — one wins, the other removes its own and opens the winner's.

What protects the CA keys is the CA passphrase (``COUNTERSIGN_CA_PASSPHRASE``). The embedded
default may go without one: a random passphrase is then kept beside the keys, as it always
was, and what protects them is the data folder's permissions (0700, files 0600). A shared
store (``COUNTERSIGN_STORE_URL``) refuses to work without one — a passphrase kept in the
bucket beside the keys would protect nothing.

Each process keeps what never changes in memory (party keys and the CA's fixed files, read
once); CRLs and ``ca/current`` are read on each use, so a revocation is seen at once.

Older data folders kept the CA in ``data/ca`` and the party keys in ``data/keys``: the first
process that needs them copies them into the store (``init`` copies them all), checking the
CA passphrase first, and renames ``data/ca`` to ``data/ca.moved-to-store``.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from pathlib import Path

from pipeline.config import Settings
from pipeline.errors import BadInput, OperationFailed
from pipeline.record.backends import open_store
from pipeline.record.store import KEY_FOLDER, Store, check_archive_path
from signing.ca import LocalCA
from signing.errors import KeyStoreError
from signing.files import Folder

CURRENT = "ca/current"
RETIRED_CA = "ca.moved-to-store"
_CACHE_LIMIT = 4096
#: (store, object name) → bytes of objects that never change once written.
_FIXED: dict[tuple[str, str], bytes] = {}


class CAPassphraseRequired(BadInput):
    code = "ca_passphrase_required"


class MissingKey(OperationFailed):
    code = "missing_key"


def _place(settings: Settings) -> str:
    """Which store ``settings`` name (the memory cache's key: one process may use several)."""
    if settings.store_url:
        return f"{settings.store_url} {settings.s3_endpoint}"
    return str(settings.data_dir)


def _remember(place: str, name: str, data: bytes) -> bytes:
    if len(_FIXED) >= _CACHE_LIMIT:
        _FIXED.clear()
    _FIXED[place, name] = data
    return data


def _read_fixed(store: Store, place: str, name: str) -> bytes | None:
    """Return the object ``keys/<name>`` that never changes, from memory after the first read."""
    found = _FIXED.get((place, name))
    if found is None:
        found = store.read_key(name)
        if found is not None:
            _remember(place, name, found)
    return found


class StoreFiles:
    """The local CA's files in the store, under ``keys/ca/<generation>/`` (a FileSource)."""

    def __init__(self, store: Store, place: str, generation: str) -> None:
        self.store, self.place, self.generation = store, place, generation

    def __str__(self) -> str:
        return f"{KEY_FOLDER}/ca/{self.generation}"

    def _name(self, name: str) -> str:
        return f"ca/{self.generation}/{name}"

    def read(self, name: str) -> bytes | None:
        """Return the CA file ``name``; a fixed one from memory after the first read."""
        if name in LocalCA.FIXED:
            return _read_fixed(self.store, self.place, self._name(name))
        return self.store.read_key(self._name(name))

    def write(self, name: str, data: bytes) -> None:
        """Write the CA file ``name`` (no retention: a CRL is replaced daily)."""
        self.store.write_key(self._name(name), data)

    def create(self, name: str, data: bytes) -> bool:
        """Write the CA file ``name`` unless it exists; return whether it was written."""
        return self.store.write_key(self._name(name), data, replace=False)

    def remove(self) -> None:
        """Delete every file of this generation (one that lost the race to be current)."""
        for name in LocalCA.EVERY:
            self.store.delete_key(self._name(name))


def ca_passphrase(settings: Settings) -> str | None:
    """Return the configured CA passphrase; None lets the embedded default keep a random one
    beside the keys. CAPassphraseRequired with a shared store and none configured."""
    if settings.ca_passphrase:
        return settings.ca_passphrase
    if settings.store_url:
        raise CAPassphraseRequired(
            "使用共享存储（COUNTERSIGN_STORE_URL）时必须设置 COUNTERSIGN_CA_PASSPHRASE",
            "a shared store (COUNTERSIGN_STORE_URL) needs COUNTERSIGN_CA_PASSPHRASE: the CA "
            "keys are kept in it encrypted under that passphrase (an older data/ca keeps its "
            "passphrase in data/ca/passphrase)")
    return None


def _generation(store: Store) -> str | None:
    data = store.read_key(CURRENT)
    return data.decode("ascii").strip() if data else None


def _new_generation() -> str:
    return f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(6)}"


def _commit(store: Store, place: str, files: StoreFiles) -> str:
    """Make ``files`` the current CA unless another is current by now; return the current
    generation (``files``' own is removed when it lost)."""
    if store.write_key(CURRENT, files.generation.encode("ascii"), replace=False):
        return files.generation
    files.remove()
    winner = _generation(store)
    if winner is None:  # the other writer's object is not visible yet
        raise OperationFailed("另一进程正在创建本地 CA，请稍后重试",
                              "another process is creating the local CA: try again shortly")
    return winner


def _retire(folder: Path) -> None:
    """Rename an older data folder's ``ca`` out of the way (kept, not deleted)."""
    target = folder.with_name(RETIRED_CA)
    if target.exists():
        target = folder.with_name(f"{RETIRED_CA}.{_new_generation()}")
    try:
        folder.rename(target)
    except FileNotFoundError:  # another process of this machine moved it first
        pass


def _migrate_ca(settings: Settings, store: Store, place: str) -> str:
    """Copy the CA of an older data folder (``data/ca``) into the store; return its
    generation. Refuses a wrong passphrase, and a store that holds another CA already."""
    legacy = Folder(settings.ca_dir)
    given = ca_passphrase(settings)
    LocalCA.open(legacy, given).check_passphrase()
    files = StoreFiles(store, place, _new_generation())
    for name in LocalCA.EVERY:
        data = legacy.read(name)
        # An operator-held passphrase stays out of the store even if a copy lay beside the CA.
        if data is not None and not (name == "passphrase" and given):
            files.write(name, data)
    current = _commit(store, place, files)
    if StoreFiles(store, place, current).read("root.crt") != legacy.read("root.crt"):
        raise KeyStoreError(
            f"存储中已有另一个本地 CA；{settings.ca_dir} 中的 CA 未迁移",
            f"the store already holds another local CA; the one in {settings.ca_dir} was not "
            "moved into it (two installations cannot share one store)")
    _retire(settings.ca_dir)
    return current


def _open(settings: Settings, store: Store) -> LocalCA | None:
    """Return the store's CA (moving an older data folder's into it first), or None."""
    place = _place(settings)
    generation = _generation(store)
    if generation is None:
        if not LocalCA.exists(settings.ca_dir):
            return None
        generation = _migrate_ca(settings, store, place)
    return LocalCA.open(StoreFiles(store, place, generation), ca_passphrase(settings))


def open_ca(settings: Settings, store: Store | None = None) -> LocalCA:
    """Return the deployment's local CA from the store; KeyStoreError when there is none."""
    found = _open(settings, store or open_store(settings))
    if found is None:
        raise KeyStoreError("存储中没有本地 CA，请先运行 countersign init",
                            "the store holds no local CA: run `countersign init` first")
    return found


def ensure_ca(settings: Settings, store: Store | None = None) -> bool:
    """Make sure the store holds the local CA; return True if this call created it (False
    when it was there, was moved from an older data folder, or another machine won)."""
    store = store or open_store(settings)
    if _open(settings, store) is not None:
        return False
    place = _place(settings)
    files = StoreFiles(store, place, _new_generation())
    LocalCA.create(files, ca_passphrase(settings))
    return _commit(store, place, files) == files.generation


# --- party keys ---------------------------------------------------------------------------

def _object_name(key_file: str) -> str:
    """Return the name under ``keys/`` of a ``key_file`` (``keys/…``)."""
    folder, _, name = key_file.partition("/")
    if folder != KEY_FOLDER or not name:
        raise MissingKey(f"密钥位置无效：{key_file!r}", f"not a key in the store: {key_file!r}")
    return check_archive_path(name)


def save_party_key(settings: Settings, party_id: str, data: bytes) -> str:
    """Keep a party's PKCS#12 ``data`` (already encrypted) under a new name; return the
    ``key_file`` that names it."""
    name = f"{party_id}-{secrets.token_hex(6)}.p12"
    open_store(settings).write_key(name, data, replace=False)
    return f"{KEY_FOLDER}/{name}"


def remove_party_key(settings: Settings, key_file: str) -> None:
    """Remove a party's key object for good."""
    open_store(settings).delete_key(_object_name(key_file))


def party_key(settings: Settings, key_file: str) -> bytes:
    """Return the PKCS#12 bytes ``key_file`` names, from memory after the first read; an
    older data folder's ``data/keys/…`` file is moved into the store on the way."""
    name = _object_name(key_file)
    store, place = open_store(settings), _place(settings)
    data = _read_fixed(store, place, name)
    if data is None:
        legacy = settings.keys_dir / name
        if not legacy.is_file():
            raise MissingKey(f"存储中找不到密钥 {key_file}",
                             f"the key {key_file} is not in the store")
        data = legacy.read_bytes()
        store.write_key(name, data, replace=False)
    return _remember(place, name, data)


def move_legacy_keys(settings: Settings, store: Store | None = None) -> int:
    """Copy every party key of an older data folder (``data/keys/*.p12``) that the store
    lacks into it; return how many were copied (none when the store is that folder)."""
    store = store or open_store(settings)
    copied = 0
    if settings.keys_dir.is_dir():
        for path in sorted(settings.keys_dir.glob("*.p12")):
            if store.read_key(path.name) is None:
                copied += store.write_key(path.name, path.read_bytes(), replace=False)
    return copied
