"""Every SQL statement of the ledger, the documents, parties, tokens and numbers lives here
and in its siblings ``security.py`` (sessions, sign-in codes, throttling, security events,
token and certificate registers), ``outbox.py`` (messages waiting to be delivered) and
``anchors.py`` (timestamp tokens over the chain head).

The rest of the pipeline calls these small functions and never writes SQL. Each statement
is written once for both backends (SQLite, PostgreSQL; see ``engine.py`` for connections,
transactions and the Alembic schema).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from sqlalchemy import Connection, text

from pipeline.record.engine import (
    DatabaseError,
    connect,
    connection,
    is_postgres,
    run,
    transaction,
)
from pipeline.record.outbox import insert_messages

__all__ = ["DatabaseError", "connect", "connection", "transaction"]

EVENT_COLUMNS = ("seq", "document_id", "kind", "actor", "at", "revision_before",
                 "revision_after", "data", "prev_hash", "hash")
PARTY_COLUMNS = ("id", "name", "dept", "email", "superior_email", "certificate_sha256",
                 "key_file", "created_at")
DOCUMENT_COLUMNS = ("id", "template", "number", "status", "head_revision", "updated_at",
                    "state")
GENESIS = "0" * 64


def _columns(columns: tuple[str, ...], prefix: str = "") -> str:
    return ", ".join(prefix + column for column in columns)


def _placeholders(columns: tuple[str, ...]) -> str:
    return ", ".join(":" + column for column in columns)


def next_in_sequence(conn: Connection, scope: str) -> int:
    """Return the next number of ``scope`` (1, 2, 3, …), allocated atomically.

    One statement in a transaction that holds the write lock (a row lock on PostgreSQL):
    two processes or servers never get the same number.
    """
    with transaction(conn):
        return _increment(conn, scope)


def _increment(conn: Connection, scope: str) -> int:
    return run(conn, "INSERT INTO number_sequences (scope, last) VALUES (:scope, 1) "
                     "ON CONFLICT (scope) DO UPDATE SET last = number_sequences.last + 1 "
                     "RETURNING last", {"scope": scope}).scalar_one()


def reserve_in_sequence(conn: Connection, scope: str, holder: str, now: str,
                        lease_until: str, used_by: str | None = None) -> int:
    """Reserve a number of ``scope`` for ``holder`` until ``lease_until``; return it.

    The lowest number whose reservation ran out unused is given again before a new one is
    drawn, so a failed or killed creation leaves no gap. With ``used_by`` the number is
    taken for good at once. The sequence row is locked for the whole transaction, so two
    servers never reserve the same number.
    """
    with transaction(conn):
        # Lock (or create) the scope's row before looking for a number to give again.
        run(conn, "INSERT INTO number_sequences (scope, last) VALUES (:scope, 0) "
                  "ON CONFLICT (scope) DO UPDATE SET last = number_sequences.last",
            {"scope": scope})
        free = run(conn, "SELECT seq FROM number_reservations WHERE scope = :scope AND "
                         "used_by IS NULL AND lease_until < :now ORDER BY seq LIMIT 1",
                   {"scope": scope, "now": now}).fetchone()
        params = {"scope": scope, "holder": holder, "lease_until": lease_until,
                  "used_by": used_by}
        # The row is taken only if it is still free when locked: on PostgreSQL its holder
        # may be recording it at this moment, which the sequence lock does not stop.
        if free and run(conn, "UPDATE number_reservations SET holder = :holder, lease_until "
                              "= :lease_until, used_by = :used_by WHERE scope = :scope AND "
                              "seq = :seq AND used_by IS NULL AND lease_until < :now",
                        {**params, "seq": free[0], "now": now}).rowcount == 1:
            params["seq"] = free[0]
        else:
            params["seq"] = _increment(conn, scope)
            run(conn, "INSERT INTO number_reservations (scope, seq, holder, lease_until, "
                      "used_by) VALUES (:scope, :seq, :holder, :lease_until, :used_by)", params)
    return params["seq"]


def use_reservation(conn: Connection, scope: str, seq: int, holder: str, used_by: str) -> bool:
    """Take reserved number ``seq`` for good (inside the caller's transaction); return False
    if ``holder`` no longer holds it (its lease ran out and another took it)."""
    return run(conn, "UPDATE number_reservations SET used_by = :used_by WHERE scope = :scope "
                     "AND seq = :seq AND holder = :holder AND used_by IS NULL",
               {"used_by": used_by, "scope": scope, "seq": seq, "holder": holder}).rowcount == 1


def release_reservation(conn: Connection, scope: str, seq: int, holder: str) -> None:
    """Give reserved number ``seq`` back at once (the creation it was for failed)."""
    run(conn, "UPDATE number_reservations SET lease_until = '' WHERE scope = :scope AND "
              "seq = :seq AND holder = :holder AND used_by IS NULL",
        {"scope": scope, "seq": seq, "holder": holder})


def insert_party(conn: Connection, party: dict) -> None:
    """Insert one party row; raises sqlalchemy's IntegrityError if the id or email is taken."""
    run(conn, f"INSERT INTO parties ({_columns(PARTY_COLUMNS)}) "
              f"VALUES ({_placeholders(PARTY_COLUMNS)})",
        {column: party.get(column) for column in PARTY_COLUMNS})


def select_parties(conn: Connection) -> list[dict]:
    """Return every party row as a dict, ordered by id."""
    rows = run(conn, f"SELECT {_columns(PARTY_COLUMNS)} FROM parties ORDER BY id")
    return [dict(zip(PARTY_COLUMNS, row, strict=True)) for row in rows]


def select_party(conn: Connection, party_id: str) -> dict | None:
    """Return the party row ``party_id`` as a dict, or None."""
    row = run(conn, f"SELECT {_columns(PARTY_COLUMNS)} FROM parties WHERE id = :id",
              {"id": party_id}).fetchone()
    return dict(zip(PARTY_COLUMNS, row, strict=True)) if row else None


# --- the ledger ---------------------------------------------------------------------------


class HeadMoved(Exception):
    """The document's head revision is not the one the caller built on."""

    def __init__(self, current: str | None) -> None:
        super().__init__(current)
        self.current = current


PROJECTION_UPSERT = (
    "INSERT INTO documents (id, template, number, status, head_revision, updated_at, "
    "request_key, next_due, state, open) VALUES (:id, :template, :number, :status, "
    ":head_revision, :updated_at, :request_key, :next_due, :state, :open) ON CONFLICT (id) "
    "DO UPDATE SET status = excluded.status, head_revision = excluded.head_revision, "
    "updated_at = excluded.updated_at, next_due = excluded.next_due, state = excluded.state, "
    "open = excluded.open")


def append_events(conn: Connection, events: list[dict],
                  hasher: Callable[[dict], str], *, expect_head: str | None = None,
                  check_head: bool = False, projection: dict | list[dict] | None = None,
                  outbox: list[dict] | None = None,
                  within: Callable[[Connection], None] | None = None) -> list[dict]:
    """Append ``events`` to the chain in one transaction; return them as stored.

    The transaction holds the chain lock (SQLite's write lock; PostgreSQL's advisory lock),
    so appends from every process and server follow one another. Each event gets the
    previous event's hash and its own (``hasher`` over its content). With ``check_head``,
    the document's head revision must still be ``expect_head`` or HeadMoved is raised and
    nothing is written. ``projection`` (id, template, number, status, head_revision,
    next_due, state; or a list of them) updates the documents table in the same
    transaction, and so do ``outbox`` rows (see ``outbox.insert_messages``; an ``event``
    key holding an index into ``events`` links a row to the event it announces).
    ``within(conn)`` runs last in the same transaction; what it raises undoes the append.
    """
    with transaction(conn, chain=True):
        if check_head:
            row = run(conn, "SELECT head_revision FROM documents WHERE id = :id",
                      {"id": events[0]["document_id"]}).fetchone()
            current = row[0] if row else None
            if current != expect_head:
                raise HeadMoved(current)
        last = run(conn, "SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1").fetchone()
        seq, prev = (last[0], last[1]) if last else (0, GENESIS)
        stored = []
        for event in events:
            seq += 1
            record = {**event, "seq": seq, "prev_hash": prev}
            record["hash"] = prev = hasher(record)
            stored.append(record)
        run(conn, f"INSERT INTO events ({_columns(EVENT_COLUMNS)}) "
                  f"VALUES ({_placeholders(EVENT_COLUMNS)})",
            [{column: record[column] for column in EVENT_COLUMNS} for record in stored])
        run(conn, "UPDATE ledger_high_water SET seq = :seq WHERE id = 1 AND seq < :seq",
            {"seq": seq})
        if projection is not None:
            rows = [projection] if isinstance(projection, dict) else projection
            run(conn, PROJECTION_UPSERT,
                [{"request_key": None, "next_due": None, "state": None, "open": 1, **row}
                 for row in rows])
        if outbox:
            insert_messages(conn, [{**row, "event_seq": stored[row["event"]]["seq"]
                                    if row.get("event") is not None else None}
                                   for row in outbox])
        if within is not None:
            within(conn)
    return stored


def select_events(conn: Connection, document_id: str | None = None) -> list[dict]:
    """Return the events of one document (or all), in chain order, as dicts."""
    sql = f"SELECT {_columns(EVENT_COLUMNS)} FROM events"
    params: dict = {}
    if document_id is not None:
        sql += " WHERE document_id = :document"
        params = {"document": document_id}
    rows = run(conn, sql + " ORDER BY seq", params)
    return [dict(zip(EVENT_COLUMNS, row, strict=True)) for row in rows]


def highest_event_seq(conn: Connection) -> int:
    """Return the highest event number ever assigned (deleted events' numbers included)."""
    row = run(conn, "SELECT seq FROM ledger_high_water WHERE id = 1").fetchone()
    return row[0] if row else 0


def event_seq_range(conn: Connection) -> tuple[int, int]:
    """Return the lowest and highest event numbers present ((1, 0) when there are none)."""
    low, high = run(conn, "SELECT MIN(seq), MAX(seq) FROM events").fetchone()
    return (low, high) if low is not None else (1, 0)


def iter_events(conn: Connection, low: int = 1, high: int = 2**62,
                batch: int = 10_000) -> Iterator[tuple]:
    """Yield the event rows numbered ``low``..``high`` as tuples in EVENT_COLUMNS order,
    ``batch`` rows at a time so that memory stays flat: on PostgreSQL from one server-side
    cursor over a repeatable-read snapshot; on SQLite by key, a batch per query."""
    sql = (f"SELECT {_columns(EVENT_COLUMNS)} FROM events WHERE seq >= :low AND "
           "seq <= :high ORDER BY seq")
    if is_postgres(conn):
        # A named cursor needs a transaction of its own, which the autocommit connections
        # of the record layer never hold.
        with conn.engine.connect().execution_options(
                isolation_level="REPEATABLE READ") as reader:
            result = reader.execution_options(stream_results=True, yield_per=batch).execute(
                text(sql), {"low": low, "high": high})
            for rows in result.partitions():
                yield from rows
        return
    sql += " LIMIT :batch"
    while low <= high:
        rows = run(conn, sql, {"low": low, "high": high, "batch": batch}).fetchall()
        yield from rows
        if len(rows) < batch:
            return
        low = rows[-1][0] + 1


def chain_head(conn: Connection) -> tuple[int, str] | None:
    """Return (seq, hash) of the last event, or None when the ledger is empty."""
    row = run(conn, "SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1").fetchone()
    return (row[0], row[1]) if row else None


# --- the documents projection ---------------------------------------------------------------


def select_documents(conn: Connection, statuses: tuple[str, ...]) -> list[dict]:
    """Return the document projection rows whose status is one of ``statuses``."""
    names = {f"s{i}": status for i, status in enumerate(statuses)}
    sql = (f"SELECT {_columns(DOCUMENT_COLUMNS)} FROM documents WHERE status IN "
           f"({', '.join(':' + name for name in names)}) ORDER BY id")
    return [dict(zip(DOCUMENT_COLUMNS, row, strict=True)) for row in run(conn, sql, names)]


# SQLite's LIMIT is a signed 64-bit integer: anything larger is an overflow, not "all".
LIMIT_CEILING = 2**62


def select_open_documents(conn: Connection, limit: int | None = None) -> list[dict]:
    """Return open documents, the most urgent (earliest next due time) first, at most
    ``limit`` (an index scan: fast however many documents are open)."""
    bound = LIMIT_CEILING if not limit or limit < 0 else min(int(limit), LIMIT_CEILING)
    # PostgreSQL sorts NULLs last, SQLite first: say which, so both agree.
    rows = run(conn, f"SELECT {_columns(DOCUMENT_COLUMNS)} FROM documents WHERE open = 1 "
                     "ORDER BY next_due NULLS FIRST, id LIMIT :limit",
               {"limit": bound})
    return [dict(zip(DOCUMENT_COLUMNS, row, strict=True)) for row in rows]


def count_open_documents(conn: Connection) -> int:
    """Return how many documents are open."""
    return run(conn, "SELECT COUNT(*) FROM documents WHERE open = 1").scalar_one()


def document_for_request(conn: Connection, request_key: str) -> str | None:
    """Return the id of the document created under ``request_key``, if any."""
    row = run(conn, "SELECT id FROM documents WHERE request_key = :key",
              {"key": request_key}).fetchone()
    return row[0] if row else None


# --- API tokens -------------------------------------------------------------------------------


def insert_token(conn: Connection, token_sha256: str, role: str, party: str | None,
                 label: str, created_at: str) -> None:
    """Store an API token's hash (the token itself is never stored)."""
    run(conn, "INSERT INTO api_tokens (token_sha256, role, party, label, created_at) "
              "VALUES (:token, :role, :party, :label, :created_at)",
        {"token": token_sha256, "role": role, "party": party, "label": label,
         "created_at": created_at})


def select_token(conn: Connection, token_sha256: str) -> dict | None:
    """Return the token row for a token hash, or None (also for a revoked token)."""
    row = run(conn, "SELECT role, party, label FROM api_tokens WHERE token_sha256 = :token "
                    "AND revoked_at IS NULL", {"token": token_sha256}).fetchone()
    return {"role": row[0], "party": row[1], "label": row[2]} if row else None


# --- webhook deliveries ---------------------------------------------------------------------


def queue_webhook_deliveries(conn: Connection, url: str, now: str) -> int:
    """Queue every event not yet queued for ``url``; return how many were added."""
    result = run(conn,
                 "INSERT INTO webhook_deliveries (url, seq, next_attempt_at) "
                 "SELECT :url, seq, :now FROM events WHERE seq > COALESCE("
                 "(SELECT MAX(seq) FROM webhook_deliveries WHERE url = :url), 0) "
                 "ON CONFLICT DO NOTHING", {"url": url, "now": now})
    return result.rowcount


def due_webhook_deliveries(conn: Connection, url: str, now: str, lease_until: str,
                           limit: int = 100) -> list[tuple]:
    """Return (seq, attempts, event row) for the undelivered events of ``url``, in order,
    up to the first one that is not due yet (events are delivered in ledger order), each
    claimed until ``lease_until``: a pass running meanwhile elsewhere finds the first of
    them leased and sends nothing, so no event is posted twice."""
    with transaction(conn):
        rows = run(conn,
                   f"SELECT d.seq, d.attempts, d.next_attempt_at, "
                   f"{_columns(EVENT_COLUMNS, 'e.')} FROM webhook_deliveries d JOIN events e "
                   "ON e.seq = d.seq WHERE d.url = :url AND d.delivered_at IS NULL "
                   "ORDER BY d.seq LIMIT :limit", {"url": url, "limit": limit}).fetchall()
        due = []
        for row in rows:
            if row[2] > now or run(
                    conn, "UPDATE webhook_deliveries SET next_attempt_at = :until WHERE url = "
                          ":url AND seq = :seq AND delivered_at IS NULL AND next_attempt_at <= "
                          ":now", {"until": lease_until, "url": url, "seq": row[0],
                                   "now": now}).rowcount != 1:
                break
            due.append((row[0], row[1], dict(zip(EVENT_COLUMNS, row[3:], strict=True))))
    return due


def release_webhook_claims(conn: Connection, url: str, seqs: list[int], lease_until: str,
                           now: str) -> None:
    """Make claimed deliveries that were not attempted due again at ``now`` (the pass
    stopped at an event that failed; these wait behind it, in order)."""
    if seqs:
        run(conn, "UPDATE webhook_deliveries SET next_attempt_at = :now WHERE url = :url AND "
                  "seq = :seq AND delivered_at IS NULL AND next_attempt_at = :lease",
            [{"now": now, "url": url, "seq": seq, "lease": lease_until} for seq in seqs])


def record_webhook_attempt(conn: Connection, url: str, seq: int, status: str,
                           delivered_at: str | None, next_attempt_at: str) -> None:
    """Record one delivery attempt's outcome."""
    run(conn, "UPDATE webhook_deliveries SET attempts = attempts + 1, last_status = :status, "
              "delivered_at = :delivered_at, next_attempt_at = :next_attempt_at "
              "WHERE url = :url AND seq = :seq",
        {"status": status, "delivered_at": delivered_at, "next_attempt_at": next_attempt_at,
         "url": url, "seq": seq})


def webhook_delivery(conn: Connection, url: str, seq: int) -> dict | None:
    """Return one delivery's record, or None."""
    row = run(conn, "SELECT attempts, delivered_at, last_status, next_attempt_at FROM "
                    "webhook_deliveries WHERE url = :url AND seq = :seq",
              {"url": url, "seq": seq}).fetchone()
    return dict(zip(("attempts", "delivered_at", "last_status", "next_attempt_at"), row,
                    strict=True)) if row else None


# --- ledger anchors (RFC 3161 tokens over the chain head) -----------------------------------
# The anchor of event ``seq`` is a timestamp token whose message imprint is that event's
# hash. The same tokens are also kept (locked) in the store, so deleting rows here does not
# remove them.

ANCHOR_COLUMNS = ("seq", "head_hash", "token", "token_sha256", "timestamped_at",
                  "recorded_at")


def _anchor(row: tuple) -> dict:
    anchor = dict(zip(ANCHOR_COLUMNS, row, strict=True))
    anchor["token"] = bytes(anchor["token"])  # PostgreSQL hands bytea back as memoryview
    return anchor


def insert_anchor(conn: Connection, anchor: dict) -> bool:
    """Record an anchor; return False if event ``seq`` already had one (kept as it was)."""
    result = run(conn, f"INSERT INTO ledger_anchors ({_columns(ANCHOR_COLUMNS)}) "
                       f"VALUES ({_placeholders(ANCHOR_COLUMNS)}) ON CONFLICT DO NOTHING",
                 {column: anchor[column] for column in ANCHOR_COLUMNS})
    return result.rowcount == 1


def select_anchors(conn: Connection) -> list[dict]:
    """Return every anchor row, by event number."""
    rows = run(conn, f"SELECT {_columns(ANCHOR_COLUMNS)} FROM ledger_anchors ORDER BY seq")
    return [_anchor(row) for row in rows]


def last_anchor(conn: Connection) -> dict | None:
    """Return the anchor of the highest event number, or None."""
    row = run(conn, f"SELECT {_columns(ANCHOR_COLUMNS)} FROM ledger_anchors "
                    "ORDER BY seq DESC LIMIT 1").fetchone()
    return _anchor(row) if row else None


def unanchored_events(conn: Connection, after_seq: int) -> tuple[int, str | None]:
    """Return how many events come after ``after_seq`` and when the oldest of them was made."""
    count, oldest = run(conn, "SELECT COUNT(*), MIN(at) FROM events WHERE seq > :seq",
                        {"seq": after_seq}).fetchone()
    return count, oldest
