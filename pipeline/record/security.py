"""SQL of the access boundary: web sessions, one-time sign-in codes, throttling counters,
security events, and the token and certificate registers.

Secrets are never stored: sessions, sign-in codes and tokens are kept as SHA-256 digests.
"""

from __future__ import annotations

import json
import sqlite3

SECURITY_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    session_sha256 TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    party TEXT,
    label TEXT NOT NULL,
    token_sha256 TEXT,
    csrf TEXT NOT NULL,
    client TEXT,
    created_at TEXT NOT NULL,
    last_seen_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    revoked_at TEXT
);
CREATE INDEX IF NOT EXISTS sessions_token ON sessions (token_sha256);
CREATE TABLE IF NOT EXISTS login_codes (
    code_sha256 TEXT PRIMARY KEY,
    party TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS throttle (
    key TEXT PRIMARY KEY,
    failures INTEGER NOT NULL,
    last_failure_at TEXT NOT NULL,
    blocked_until TEXT
);
CREATE TABLE IF NOT EXISTS security_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    kind TEXT NOT NULL,
    party TEXT,
    client TEXT,
    detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS security_events_party ON security_events (party, id);
CREATE TABLE IF NOT EXISTS party_certificates (
    party TEXT NOT NULL,
    certificate_sha256 TEXT NOT NULL,
    label TEXT NOT NULL,
    added_at TEXT NOT NULL,
    PRIMARY KEY (party, certificate_sha256)
);
"""
SESSION_COLUMNS = ("session_sha256", "role", "party", "label", "token_sha256", "csrf",
                   "client", "created_at", "last_seen_at", "expires_at", "revoked_at")
TOKEN_COLUMNS = ("token_sha256", "role", "party", "label", "created_at", "revoked_at")
SECURITY_COLUMNS = ("id", "at", "kind", "party", "client", "detail")


# --- sessions -------------------------------------------------------------------------------


def insert_session(conn: sqlite3.Connection, session: dict) -> None:
    """Store a new session row (see SESSION_COLUMNS; ``revoked_at`` may be left out)."""
    row = {"revoked_at": None, **session}
    conn.execute(f"INSERT INTO sessions ({', '.join(SESSION_COLUMNS)}) VALUES "
                 f"({', '.join(':' + c for c in SESSION_COLUMNS)})", row)


def select_session(conn: sqlite3.Connection, session_sha256: str) -> dict | None:
    """Return a session row joined with its token's revocation, or None.

    ``token_revoked`` is set when the session was opened with a token revoked since."""
    row = conn.execute(
        f"SELECT {', '.join('s.' + c for c in SESSION_COLUMNS)}, t.revoked_at "
        "FROM sessions s LEFT JOIN api_tokens t ON t.token_sha256 = s.token_sha256 "
        "WHERE s.session_sha256 = ?", (session_sha256,)).fetchone()
    if row is None:
        return None
    return {**dict(zip(SESSION_COLUMNS, row[:-1], strict=True)), "token_revoked": row[-1]}


def touch_session(conn: sqlite3.Connection, session_sha256: str, now: str) -> None:
    """Record that the session was used at ``now`` (the idle timeout counts from here)."""
    conn.execute("UPDATE sessions SET last_seen_at = ? WHERE session_sha256 = ?",
                 (now, session_sha256))


def revoke_sessions(conn: sqlite3.Connection, now: str, *, session_sha256: str | None = None,
                    token_sha256: str | None = None, party: str | None = None) -> int:
    """Revoke one session, every session opened with a token, or every session of a party;
    return how many were still active."""
    column, value = next((c, v) for c, v in (("session_sha256", session_sha256),
                                              ("token_sha256", token_sha256),
                                              ("party", party)) if v is not None)
    cursor = conn.execute(f"UPDATE sessions SET revoked_at = ? WHERE {column} = ? AND "
                          "revoked_at IS NULL", (now, value))
    return cursor.rowcount


def select_sessions(conn: sqlite3.Connection, now: str) -> list[dict]:
    """Return the sessions neither revoked nor past their absolute expiry, newest first."""
    rows = conn.execute(f"SELECT {', '.join(SESSION_COLUMNS)} FROM sessions WHERE revoked_at "
                        "IS NULL AND expires_at > ? ORDER BY created_at DESC", (now,))
    return [dict(zip(SESSION_COLUMNS, row, strict=True)) for row in rows]


def purge_sessions(conn: sqlite3.Connection, before: str) -> int:
    """Delete sessions that ended (expired or revoked) before ``before``; return how many."""
    cursor = conn.execute("DELETE FROM sessions WHERE expires_at < ? OR revoked_at < ?",
                          (before, before))
    return cursor.rowcount


# --- tokens ---------------------------------------------------------------------------------


def select_tokens(conn: sqlite3.Connection) -> list[dict]:
    """Return every token row (revoked ones too), oldest first."""
    rows = conn.execute(f"SELECT {', '.join(TOKEN_COLUMNS)} FROM api_tokens "
                        "ORDER BY created_at")
    return [dict(zip(TOKEN_COLUMNS, row, strict=True)) for row in rows]


def revoke_token(conn: sqlite3.Connection, token_sha256: str, now: str) -> bool:
    """Revoke a token and every session opened with it; return False if it was not active."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        cursor = conn.execute("UPDATE api_tokens SET revoked_at = ? WHERE token_sha256 = ? "
                              "AND revoked_at IS NULL", (now, token_sha256))
        revoke_sessions(conn, now, token_sha256=token_sha256)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return cursor.rowcount == 1


# --- one-time sign-in codes -------------------------------------------------------------------


def insert_login_code(conn: sqlite3.Connection, code_sha256: str, party: str,
                      expires_at: str, now: str) -> None:
    """Store a sign-in code, dropping every code that has expired."""
    conn.execute("DELETE FROM login_codes WHERE expires_at <= ?", (now,))
    conn.execute("INSERT INTO login_codes (code_sha256, party, expires_at) VALUES (?, ?, ?)",
                 (code_sha256, party, expires_at))


def take_login_code(conn: sqlite3.Connection, code_sha256: str, now: str) -> str | None:
    """Consume a sign-in code: return its party if it was valid at ``now``, else None.
    A code works once: it is deleted whether or not it had expired."""
    row = conn.execute("DELETE FROM login_codes WHERE code_sha256 = ? RETURNING party, "
                       "expires_at", (code_sha256,)).fetchone()
    return row[0] if row and row[1] > now else None


# --- throttling -----------------------------------------------------------------------------


def select_throttle(conn: sqlite3.Connection, keys: list[str]) -> list[dict]:
    """Return the throttle rows of ``keys`` (missing keys have none)."""
    if not keys:
        return []
    rows = conn.execute("SELECT key, failures, last_failure_at, blocked_until FROM throttle "
                        f"WHERE key IN ({', '.join('?' for _ in keys)})", keys)
    return [dict(zip(("key", "failures", "last_failure_at", "blocked_until"), row,
                     strict=True)) for row in rows]


def record_throttle_failure(conn: sqlite3.Connection, key: str, now: str,
                            block_for: object) -> int:
    """Count one more failure for ``key`` at ``now``; ``block_for(failures)`` returns the
    ISO time until which the key is then blocked (or None). Returns the failure count."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        (failures,) = conn.execute(
            "INSERT INTO throttle (key, failures, last_failure_at) VALUES (?, 1, ?) "
            "ON CONFLICT(key) DO UPDATE SET failures = failures + 1, last_failure_at = "
            "excluded.last_failure_at RETURNING failures", (key, now)).fetchone()
        conn.execute("UPDATE throttle SET blocked_until = ? WHERE key = ?",
                     (block_for(failures), key))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return failures


def clear_throttle(conn: sqlite3.Connection, keys: list[str]) -> None:
    """Forget the failures of ``keys`` (after a success)."""
    conn.executemany("DELETE FROM throttle WHERE key = ?", [(key,) for key in keys])


# --- security events ------------------------------------------------------------------------


def insert_security_event(conn: sqlite3.Connection, at: str, kind: str, party: str | None,
                          client: str | None, detail: dict) -> None:
    """Record one security event (a failed sign-in or passphrase, a lockout, a revocation)."""
    conn.execute("INSERT INTO security_events (at, kind, party, client, detail) "
                 "VALUES (?, ?, ?, ?, ?)",
                 (at, kind, party, client, json.dumps(detail, ensure_ascii=False)))


def select_security_events(conn: sqlite3.Connection, party: str | None = None,
                           limit: int = 50) -> list[dict]:
    """Return the newest security events (of one party, or all)."""
    sql = f"SELECT {', '.join(SECURITY_COLUMNS)} FROM security_events"
    args: list = []
    if party is not None:
        sql += " WHERE party = ?"
        args.append(party)
    rows = conn.execute(sql + " ORDER BY id DESC LIMIT ?", [*args, limit])
    return [{**dict(zip(SECURITY_COLUMNS, row, strict=True)), "detail": json.loads(row[5])}
            for row in rows]


# --- certificates registered for a party ----------------------------------------------------


def insert_party_certificate(conn: sqlite3.Connection, party: str, certificate_sha256: str,
                             label: str, added_at: str) -> None:
    """Register one more certificate fingerprint as the party's (idempotent)."""
    conn.execute("INSERT OR IGNORE INTO party_certificates (party, certificate_sha256, label, "
                 "added_at) VALUES (?, ?, ?, ?)", (party, certificate_sha256, label, added_at))


def select_party_certificates(conn: sqlite3.Connection, party: str) -> list[str]:
    """Return the fingerprints registered for ``party`` besides its own key's."""
    rows = conn.execute("SELECT certificate_sha256 FROM party_certificates WHERE party = ? "
                        "ORDER BY added_at", (party,))
    return [row[0] for row in rows]
