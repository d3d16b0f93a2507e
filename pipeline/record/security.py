"""SQL of the access boundary: web sessions, one-time sign-in codes, throttling counters,
security events, and the token and certificate registers.

Secrets are never stored: sessions, sign-in codes and tokens are kept as SHA-256 digests.
"""

from __future__ import annotations

import json

from sqlalchemy import Connection

from pipeline.record.engine import run, transaction

SESSION_COLUMNS = ("session_sha256", "role", "party", "label", "token_sha256", "csrf",
                   "client", "created_at", "last_seen_at", "expires_at", "revoked_at")
TOKEN_COLUMNS = ("token_sha256", "role", "party", "label", "created_at", "revoked_at")
SECURITY_COLUMNS = ("id", "at", "kind", "party", "client", "detail")


# --- sessions -------------------------------------------------------------------------------


def insert_session(conn: Connection, session: dict) -> None:
    """Store a new session row (see SESSION_COLUMNS; ``revoked_at`` may be left out)."""
    row = {"revoked_at": None, **session}
    run(conn, f"INSERT INTO sessions ({', '.join(SESSION_COLUMNS)}) VALUES "
              f"({', '.join(':' + c for c in SESSION_COLUMNS)})",
        {column: row[column] for column in SESSION_COLUMNS})


def select_session(conn: Connection, session_sha256: str) -> dict | None:
    """Return a session row joined with its token's revocation, or None.

    ``token_revoked`` is set when the session was opened with a token revoked since."""
    row = run(conn,
              f"SELECT {', '.join('s.' + c for c in SESSION_COLUMNS)}, t.revoked_at "
              "FROM sessions s LEFT JOIN api_tokens t ON t.token_sha256 = s.token_sha256 "
              "WHERE s.session_sha256 = :session", {"session": session_sha256}).fetchone()
    if row is None:
        return None
    return {**dict(zip(SESSION_COLUMNS, row[:-1], strict=True)), "token_revoked": row[-1]}


def touch_session(conn: Connection, session_sha256: str, now: str) -> None:
    """Record that the session was used at ``now`` (the idle timeout counts from here)."""
    run(conn, "UPDATE sessions SET last_seen_at = :now WHERE session_sha256 = :session",
        {"now": now, "session": session_sha256})


def revoke_sessions(conn: Connection, now: str, *, session_sha256: str | None = None,
                    token_sha256: str | None = None, party: str | None = None) -> int:
    """Revoke one session, every session opened with a token, or every session of a party;
    return how many were still active."""
    column, value = next((c, v) for c, v in (("session_sha256", session_sha256),
                                              ("token_sha256", token_sha256),
                                              ("party", party)) if v is not None)
    result = run(conn, f"UPDATE sessions SET revoked_at = :now WHERE {column} = :value AND "
                       "revoked_at IS NULL", {"now": now, "value": value})
    return result.rowcount


def select_sessions(conn: Connection, now: str) -> list[dict]:
    """Return the sessions neither revoked nor past their absolute expiry, newest first."""
    rows = run(conn, f"SELECT {', '.join(SESSION_COLUMNS)} FROM sessions WHERE revoked_at "
                     "IS NULL AND expires_at > :now ORDER BY created_at DESC", {"now": now})
    return [dict(zip(SESSION_COLUMNS, row, strict=True)) for row in rows]


def purge_sessions(conn: Connection, before: str) -> int:
    """Delete sessions that ended (expired or revoked) before ``before``; return how many."""
    result = run(conn, "DELETE FROM sessions WHERE expires_at < :before OR revoked_at < :before",
                 {"before": before})
    return result.rowcount


# --- tokens ---------------------------------------------------------------------------------


def select_tokens(conn: Connection) -> list[dict]:
    """Return every token row (revoked ones too), oldest first."""
    rows = run(conn, f"SELECT {', '.join(TOKEN_COLUMNS)} FROM api_tokens ORDER BY created_at")
    return [dict(zip(TOKEN_COLUMNS, row, strict=True)) for row in rows]


def revoke_token(conn: Connection, token_sha256: str, now: str) -> bool:
    """Revoke a token and every session opened with it; return False if it was not active."""
    with transaction(conn):
        result = run(conn, "UPDATE api_tokens SET revoked_at = :now WHERE token_sha256 = "
                           ":token AND revoked_at IS NULL", {"now": now, "token": token_sha256})
        revoke_sessions(conn, now, token_sha256=token_sha256)
    return result.rowcount == 1


# --- one-time sign-in codes -------------------------------------------------------------------


def insert_login_code(conn: Connection, code_sha256: str, party: str,
                      expires_at: str, now: str) -> None:
    """Store a sign-in code, dropping every code that has expired."""
    run(conn, "DELETE FROM login_codes WHERE expires_at <= :now", {"now": now})
    run(conn, "INSERT INTO login_codes (code_sha256, party, expires_at) VALUES "
              "(:code, :party, :expires_at)",
        {"code": code_sha256, "party": party, "expires_at": expires_at})


def take_login_code(conn: Connection, code_sha256: str, now: str) -> str | None:
    """Consume a sign-in code: return its party if it was valid at ``now``, else None.
    A code works once: it is deleted whether or not it had expired."""
    row = run(conn, "DELETE FROM login_codes WHERE code_sha256 = :code RETURNING party, "
                    "expires_at", {"code": code_sha256}).fetchone()
    return row[0] if row and row[1] > now else None


# --- throttling -----------------------------------------------------------------------------


def select_throttle(conn: Connection, keys: list[str]) -> list[dict]:
    """Return the throttle rows of ``keys`` (missing keys have none)."""
    if not keys:
        return []
    names = {f"k{i}": key for i, key in enumerate(keys)}
    rows = run(conn, "SELECT key, failures, last_failure_at, blocked_until FROM throttle "
                     f"WHERE key IN ({', '.join(':' + name for name in names)})", names)
    return [dict(zip(("key", "failures", "last_failure_at", "blocked_until"), row,
                     strict=True)) for row in rows]


def record_throttle_failure(conn: Connection, key: str, now: str,
                            block_for: object) -> int:
    """Count one more failure for ``key`` at ``now``; ``block_for(failures)`` returns the
    ISO time until which the key is then blocked (or None). Returns the failure count."""
    with transaction(conn):
        (failures,) = run(
            conn, "INSERT INTO throttle (key, failures, last_failure_at) VALUES (:key, 1, "
                  ":now) ON CONFLICT (key) DO UPDATE SET failures = throttle.failures + 1, "
                  "last_failure_at = excluded.last_failure_at RETURNING failures",
            {"key": key, "now": now}).fetchone()
        run(conn, "UPDATE throttle SET blocked_until = :until WHERE key = :key",
            {"until": block_for(failures), "key": key})  # type: ignore[operator]
    return failures


def clear_throttle(conn: Connection, keys: list[str]) -> None:
    """Forget the failures of ``keys`` (after a success)."""
    if keys:
        run(conn, "DELETE FROM throttle WHERE key = :key", [{"key": key} for key in keys])


# --- security events ------------------------------------------------------------------------


def insert_security_event(conn: Connection, at: str, kind: str, party: str | None,
                          client: str | None, detail: dict) -> None:
    """Record one security event (a failed sign-in or passphrase, a lockout, a revocation)."""
    run(conn, "INSERT INTO security_events (at, kind, party, client, detail) "
              "VALUES (:at, :kind, :party, :client, :detail)",
        {"at": at, "kind": kind, "party": party, "client": client,
         "detail": json.dumps(detail, ensure_ascii=False)})


def select_security_events(conn: Connection, party: str | None = None,
                           limit: int = 50) -> list[dict]:
    """Return the newest security events (of one party, or all)."""
    sql = f"SELECT {', '.join(SECURITY_COLUMNS)} FROM security_events"
    params: dict = {"limit": limit}
    if party is not None:
        sql += " WHERE party = :party"
        params["party"] = party
    rows = run(conn, sql + " ORDER BY id DESC LIMIT :limit", params)
    return [{**dict(zip(SECURITY_COLUMNS, row, strict=True)), "detail": json.loads(row[5])}
            for row in rows]


# --- certificates registered for a party ----------------------------------------------------


def insert_party_certificate(conn: Connection, party: str, certificate_sha256: str,
                             label: str, added_at: str) -> None:
    """Register one more certificate fingerprint as the party's (idempotent)."""
    run(conn, "INSERT INTO party_certificates (party, certificate_sha256, label, added_at) "
              "VALUES (:party, :certificate, :label, :added_at) ON CONFLICT DO NOTHING",
        {"party": party, "certificate": certificate_sha256, "label": label,
         "added_at": added_at})


def select_party_certificates(conn: Connection, party: str) -> list[str]:
    """Return the fingerprints registered for ``party`` besides its own key's."""
    rows = run(conn, "SELECT certificate_sha256 FROM party_certificates WHERE party = :party "
                     "ORDER BY added_at", {"party": party})
    return [row[0] for row in rows]
