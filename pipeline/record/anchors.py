"""Anchored ledger head: the chain's last hash, timestamped by the RFC 3161 TSA.

The hash chain shows any change made *without* re-hashing; someone with write access to the
database could still rewrite an event and re-hash everything after it. An anchor defeats
that: a timestamp token, signed by the deployment's TSA (the local CA's own by default,
``COUNTERSIGN_TSA_URL`` otherwise), whose message imprint is the hash of event ``seq``. Nobody
without the TSA's key can make one, so after a rewrite the anchors at or after the rewritten
event no longer match, and ``ledger verify`` names the first one that fails and the last one
that still holds: the rewrite lies between them.

Each token is kept twice: in the ``ledger_anchors`` table, and in the store under
``ledger-anchors/<seq>.tsr`` — in S3 under COMPLIANCE retention
(``COUNTERSIGN_ANCHOR_RETENTION_YEARS``), so deleting the table's rows hides nothing.

The head is anchored every ``COUNTERSIGN_ANCHOR_EVERY_EVENTS`` events or once the oldest
unanchored event is ``COUNTERSIGN_ANCHOR_EVERY_MINUTES`` old (checked after each append and
by the service's periodic pass), and on ``countersign ledger anchor``. Before anchoring, the
events since the previous anchor are checked, so an anchor never vouches for a broken chain.
The store is written first; a process killed before the database row is written leaves a
token only in the store, which the next anchoring records (if it still matches the chain).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import PurePosixPath

from pipeline.config import Settings
from pipeline.errors import KNOWN_ERRORS, OperationFailed
from pipeline.record import database, ledger
from pipeline.record.backends import open_store
from pipeline.record.crashpoints import crash_point
from pipeline.record.store import ANCHOR_FOLDER, Archival, Store, sha256
from pipeline.signing_setup import timestamp_authority, trust_for
from signing.timestamps import check_timestamp_token, check_timestamp_tokens, timestamp_digest

log = logging.getLogger(__name__)


class ChainBroken(OperationFailed):
    """The events since the last anchor do not form a sound chain: nothing is anchored."""

    code = "chain_broken"


@dataclass(frozen=True)
class Anchor:
    """One anchored head: event ``seq`` with hash ``head_hash``, timestamped at a time."""

    seq: int
    head_hash: str
    timestamped_at: str
    token_sha256: str
    new: bool = True

    def as_dict(self) -> dict[str, object]:
        return {"seq": self.seq, "head_hash": self.head_hash,
                "timestamped_at": self.timestamped_at, "token_sha256": self.token_sha256,
                "new": self.new}


def anchor_path(seq: int) -> str:
    """Return the archive path of the anchor of event ``seq`` in the store."""
    return f"{ANCHOR_FOLDER}/{seq:012d}.tsr"


def _anchor_of(row: dict, new: bool) -> Anchor:
    return Anchor(row["seq"], row["head_hash"], row["timestamped_at"], row["token_sha256"],
                  new)


def _adopt_stored(settings: Settings, store: Store) -> None:
    """Record the anchors the store holds past the database's last one: the process that
    made them died between the two writes. Only tokens that are valid for the events as they
    are now are adopted; any other stays for ``ledger verify`` to name."""
    with database.connection(settings.database) as conn:
        last = database.last_anchor(conn)
        after = anchor_path(last["seq"]) if last else ""
        stored = _stored_anchors(store, [], after)
        rows = {seq: next(database.iter_events(conn, seq, seq), None) for seq in stored}
    found = [(seq, stored[seq], ledger.hash_values(row[:9])) for seq, row in rows.items()
             if row is not None]
    if not found:
        return
    checks = check_timestamp_tokens([(token, bytes.fromhex(current))
                                     for _, token, current in found], trust_for(settings))
    with database.connection(settings.database) as conn:
        for (seq, token, current), check in zip(found, checks, strict=True):
            if check.valid:
                database.insert_anchor(conn, {
                    "seq": seq, "head_hash": current, "token": token,
                    "token_sha256": sha256(token), "recorded_at": ledger.now_utc(),
                    "timestamped_at": check.time.isoformat() if check.time else ""})


def anchor_head(settings: Settings) -> Anchor | None:
    """Timestamp the current chain head and keep the token; return the anchor (the existing
    one if the head is already anchored), or None when the ledger is empty.

    ChainBroken if the events since the previous anchor do not verify; the TSA's or the
    store's errors if either is unavailable (nothing is recorded then)."""
    store = open_store(settings)
    _adopt_stored(settings, store)
    with database.connection(settings.database) as conn:
        head = database.chain_head(conn)
        last = database.last_anchor(conn)
    if head is None:
        return None
    seq, head_hash = head
    if last and last["seq"] >= seq:
        return _anchor_of(last, new=False)
    low = last["seq"] + 1 if last else 1
    problems, first, previous, last_hash = ledger.check_range(settings.database, low, seq)
    expected_previous = last["head_hash"] if last else ledger.GENESIS
    if problems or first != low or previous != expected_previous or last_hash != head_hash:
        raise ChainBroken(
            f"事件 {low}–{seq} 的哈希链不完整，未锚定（请运行 countersign ledger verify）",
            f"the chain of events {low}..{seq} does not verify, so it is not anchored "
            "(run countersign ledger verify)")
    digest = bytes.fromhex(head_hash)
    token = timestamp_digest(timestamp_authority(settings), digest)
    check = check_timestamp_token(token, digest, trust_for(settings))
    if not check.valid:
        # A TSA whose tokens this deployment cannot verify would make anchors worth nothing.
        raise OperationFailed("时间戳机构的令牌无法验证，未锚定",
                              "the timestamp authority's token does not verify here: "
                              + "; ".join(check.problems))
    keep_until = datetime.now(UTC).date() + timedelta(
        days=366 * settings.anchor_retention_years)
    store.put(token, archive=Archival(anchor_path(seq), keep_until))
    crash_point("anchor:after-store")
    row = {"seq": seq, "head_hash": head_hash, "token": token, "token_sha256": sha256(token),
           "timestamped_at": check.time.isoformat() if check.time else "",
           "recorded_at": ledger.now_utc()}
    with database.connection(settings.database) as conn:
        new = database.insert_anchor(conn, row)
        if not new:  # another process anchored the same head first: keep its token
            row = next(a for a in database.select_anchors(conn) if a["seq"] == seq)
    return _anchor_of(row, new)


def anchor_due(settings: Settings, now: datetime | None = None) -> bool:
    """Return True if unanchored events are as many, or as old, as the settings allow."""
    if settings.anchor_every_events <= 0 and settings.anchor_every_minutes <= 0:
        return False
    with database.connection(settings.database) as conn:
        last = database.last_anchor(conn)
        count, oldest = database.unanchored_events(conn, last["seq"] if last else 0)
    if count == 0:
        return False
    if 0 < settings.anchor_every_events <= count:
        return True
    age = (now or datetime.now(UTC)) - datetime.fromisoformat(oldest or "")
    return 0 < settings.anchor_every_minutes and age >= timedelta(
        minutes=settings.anchor_every_minutes)


def anchor_if_due(settings: Settings) -> Anchor | None:
    """Anchor the head if :func:`anchor_due`; a failure is logged (the events stay recorded
    and the next append or periodic pass tries again), never raised."""
    try:
        return anchor_head(settings) if anchor_due(settings) else None
    except (*KNOWN_ERRORS, OSError) as exc:
        log.warning("ledger anchor not made: %s", exc)
        return None


@dataclass
class AnchorReport:
    """What the anchors say: how many were checked, the last event a valid anchor still
    vouches for, and every problem."""

    anchors: int = 0
    anchored_through: int = 0
    problems: list[str] = field(default_factory=list)


def _stored_anchors(store: Store, problems: list[str], after: str = "") -> dict[int, bytes]:
    """Return the store's anchor tokens (after the archive path ``after``) by event number;
    a file that is not an anchor is added to ``problems``."""
    found = {}
    for path, token in store.archived(ANCHOR_FOLDER, after).items():
        name = PurePosixPath(path).name
        if name.endswith(".tsr") and name[:-4].isdigit():
            found[int(name[:-4])] = token
        else:
            problems.append(f"存储中有无法识别的锚点文件 {path} / unexpected file {path} "
                            "among the stored anchors")
    return found


def verify_anchors(settings: Settings, store: Store | None = None) -> AnchorReport:
    """Check every anchor, from the database and from the store: each token must be an
    authentic RFC 3161 token of a trusted TSA over the hash event ``seq`` has *now*."""
    store = store or open_store(settings)
    report = AnchorReport()
    with database.connection(settings.database) as conn:
        in_database = {row["seq"]: row["token"] for row in database.select_anchors(conn)}
        in_store = _stored_anchors(store, report.problems)
        seqs = sorted(set(in_database) | set(in_store))
        rows = {seq: next(database.iter_events(conn, seq, seq), None) for seq in seqs}
    if not seqs:
        return report
    holds: list[int] = []
    fails: list[tuple[int, str]] = []
    pending: list[tuple[int, str, str, bytes, bytes]] = []  # seq, zh, en, token, digest
    for seq in seqs:
        if seq not in in_database:
            report.problems.append(f"事件 {seq} 的锚点已从数据库删除（存储中仍在）/ the anchor "
                                   f"of event {seq} is missing from the database (the store "
                                   "still holds it)")
        if seq not in in_store:
            report.problems.append(f"事件 {seq} 的锚点不在存储中 / the anchor of event {seq} "
                                   "is not in the store")
        if rows[seq] is None:
            report.problems.append(f"锚定的事件 {seq} 已不存在 / anchored event {seq} is gone")
            continue
        current = bytes.fromhex(ledger.hash_values(rows[seq][:9]))
        from_db, from_store = in_database.get(seq), in_store.get(seq)
        if from_db is not None:
            pending.append((seq, "数据库", "database", bytes(from_db), current))
        if from_store is not None and from_store != from_db:
            pending.append((seq, "存储", "store", from_store, current))
    checks = check_timestamp_tokens([(token, digest) for *_, token, digest in pending],
                                    trust_for(settings))
    for (seq, zh, en, _, _), check in zip(pending, checks, strict=True):
        report.anchors += 1
        if not (check.readable and check.authentic and check.trusted):
            report.problems.append(f"事件 {seq} 的锚点（{zh}）被拒绝 / the anchor of event "
                                   f"{seq} ({en}) is refused: " + "; ".join(check.problems))
        elif check.matches:
            holds.append(seq)
        else:
            fails.append((seq, check.time.isoformat() if check.time else "?"))
    if fails:
        seq, when = min(fails)
        good = max((s for s in holds if s < seq), default=0)
        report.problems.append(
            f"账本被改写：事件 {seq} 与其 {when} 的锚点不符，最后仍相符的锚点是事件 {good}，"
            f"改写发生在事件 {good + 1}–{seq} 之间 / the chain was rewritten: event {seq} "
            f"no longer matches its anchor timestamped {when}; the last anchor that still holds is "
            f"event {good}, so the first divergence lies in events {good + 1}..{seq}")
        report.anchored_through = good
    else:
        report.anchored_through = max(holds, default=0)
    return report
