"""Who is calling: roles, principals, and the access tokens and web sessions that name them.
Tokens are random, shown once, and stored only as SHA-256; ``revoke`` ends a token and every
session opened with it. What a principal may do is the policy's (``pipeline.people.policy``).

A web sign-in (with a token, or a one-time link sent by mail) opens a session: a random id
in an HttpOnly cookie, kept in the database as a SHA-256 with its principal, a CSRF secret,
an absolute expiry (``session_hours``) and an idle timeout (``session_idle_minutes``).
The cookie never holds a token, signing out revokes the session on the server, and a link
sign-in mints no token.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pipeline.config import Settings
from pipeline.errors import BadInput, UnknownParty
from pipeline.people import throttle
from pipeline.people.roles import Role
from pipeline.record import database, security


@dataclass(frozen=True)
class Principal:
    """Who is calling: a role, the party a party token acts as, and the token's label."""

    role: Role
    party: str | None
    label: str

    @property
    def actor(self) -> str:
        """Return the name the ledger records for what this principal does."""
        return self.party or f"{self.role}:{self.label}"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_token(settings: Settings, role: str, party: str | None = None,
                 label: str = "") -> str:
    """Return a new API token (shown once; only its hash is kept)."""
    if role not in set(Role):
        raise BadInput(f"未知角色 {role!r}",
                       f"unknown role {role!r} (one of {', '.join(Role)})")
    role = Role(role)
    if role is not Role.PARTY and party:
        raise BadInput("只有 party 角色的令牌绑定签署方", "only party tokens name a party")
    if role is Role.PARTY and not party:
        raise BadInput("party 角色的令牌需要 --party", "a party token needs --party")
    token = secrets.token_urlsafe(32)
    with database.connection(settings.database) as conn:
        # Checked here rather than through pipeline.people.parties, which loads the signing
        # library: the command line imports this module for its role names.
        if party and database.select_party(conn, party) is None:
            raise UnknownParty.named(party)
        database.insert_token(conn, _digest(token), role, party, label or role,
                              datetime.now(UTC).isoformat())
    return token


def principal_for(settings: Settings, token: str) -> Principal | None:
    """Return who holds ``token``, or None for an unknown token."""
    with database.connection(settings.database) as conn:
        row = database.select_token(conn, _digest(token))
    if row is None:
        return None
    return Principal(role=Role(row["role"]), party=row["party"], label=row["label"])


# --- web sessions -----------------------------------------------------------------------------

LINK_LIFETIME = timedelta(minutes=15)
# last_seen is written at most this often: a page view is not a database write.
TOUCH_EVERY = timedelta(seconds=60)


class UnknownCredential(BadInput):
    code = "unknown_credential"


@dataclass(frozen=True)
class Session:
    """An open web session. ``id`` is the cookie's secret; only its hash is stored."""

    id: str
    principal: Principal
    csrf: str
    expires_at: str


def _now() -> datetime:
    return datetime.now(UTC)


def open_session(settings: Settings, principal: Principal, *, token: str | None = None,
                 client: str | None = None) -> Session:
    """Open a session for ``principal`` (signed in with ``token``, if any)."""
    now = _now()
    session = Session(id=secrets.token_urlsafe(32), principal=principal,
                      csrf=secrets.token_urlsafe(32),
                      expires_at=(now + timedelta(hours=settings.session_hours)).isoformat())
    with database.connection(settings.database) as conn:
        security.purge_sessions(conn, (now - timedelta(days=30)).isoformat())
        security.insert_session(conn, {
            "session_sha256": _digest(session.id), "role": principal.role,
            "party": principal.party, "label": principal.label,
            "token_sha256": _digest(token) if token else None, "csrf": session.csrf,
            "client": client, "created_at": now.isoformat(), "last_seen_at": now.isoformat(),
            "expires_at": session.expires_at})
    return session


def session_for(settings: Settings, session_id: str) -> Session | None:
    """Return the session behind a cookie's ``session_id`` if it is still good: not revoked
    (nor its token), not past its expiry, not idle past the idle timeout."""
    if not session_id:
        return None
    now = _now()
    digest = _digest(session_id)
    with database.connection(settings.database) as conn:
        row = security.select_session(conn, digest)
        if (row is None or row["revoked_at"] or row["token_revoked"]
                or datetime.fromisoformat(row["expires_at"]) <= now):
            return None
        seen = datetime.fromisoformat(row["last_seen_at"])
        if seen + timedelta(minutes=settings.session_idle_minutes) <= now:
            return None
        if now - seen >= TOUCH_EVERY:
            security.touch_session(conn, digest, now.isoformat())
    return Session(session_id, Principal(Role(row["role"]), row["party"], row["label"]),
                   row["csrf"], row["expires_at"])


def close_session(settings: Settings, session_id: str) -> None:
    """Revoke the session behind ``session_id`` (signing out)."""
    with database.connection(settings.database) as conn:
        security.revoke_sessions(conn, _now().isoformat(), session_sha256=_digest(session_id))


def csrf_matches(session: Session, presented: str | None) -> bool:
    """Return True if ``presented`` is the session's CSRF secret (constant-time)."""
    return bool(presented) and hmac.compare_digest(session.csrf, presented)


def sign_in_with_token(settings: Settings, token: str, client: str | None) -> Session | None:
    """Open a session for a valid ``token``; None (counted as a failed sign-in of the client)
    otherwise. TooManyAttempts while the client must wait."""
    throttle.check(settings, throttle.SIGN_IN, client=client)
    principal = principal_for(settings, token.strip()) if token else None
    if principal is None:
        throttle.failed(settings, throttle.SIGN_IN, client=client, detail={"with": "token"})
        return None
    throttle.succeeded(settings, throttle.SIGN_IN, client=client)
    return open_session(settings, principal, token=token.strip(), client=client)


def create_login_code(settings: Settings, email: str) -> tuple[str, str] | None:
    """Return (party id, one-time code) for a registered address, or None. The code is
    kept as a hash, works once and for ``LINK_LIFETIME``; expired codes are purged."""
    wanted = (email or "").strip().lower()
    code = secrets.token_urlsafe(24)
    now = _now()
    with database.connection(settings.database) as conn:
        party = next((row["id"] for row in database.select_parties(conn)
                      if row["email"].lower() == wanted), None)
        if party is None:
            return None
        security.insert_login_code(conn, _digest(code), party,
                                   (now + LINK_LIFETIME).isoformat(), now.isoformat())
    return party, code


def sign_in_with_code(settings: Settings, code: str, client: str | None) -> Session | None:
    """Open a session for a one-time ``code`` (consumed either way); None if it is unknown,
    used or expired (counted as a failed sign-in of the client)."""
    throttle.check(settings, throttle.SIGN_IN, client=client)
    with database.connection(settings.database) as conn:
        party = security.take_login_code(conn, _digest(code), _now().isoformat())
    if party is None:
        throttle.failed(settings, throttle.SIGN_IN, client=client, detail={"with": "link"})
        return None
    throttle.succeeded(settings, throttle.SIGN_IN, client=client)
    return open_session(settings, Principal(Role.PARTY, party, "web sign-in"), client=client)


# --- listing and revoking credentials ---------------------------------------------------------


def credential_id(kind: str, digest: str) -> str:
    """Return the id a token or session is listed and revoked by (not a secret)."""
    return f"{kind}-{digest[:12]}"


def list_credentials(settings: Settings) -> list[dict]:
    """Return every token (revoked ones marked) and every open session."""
    now = _now().isoformat()
    with database.connection(settings.database) as conn:
        tokens = security.select_tokens(conn)
        sessions = security.select_sessions(conn, now)
    return ([{"id": credential_id("tok", t["token_sha256"]), "kind": "token", "role": t["role"],
              "party": t["party"], "label": t["label"], "created_at": t["created_at"],
              "revoked_at": t["revoked_at"]} for t in tokens]
            + [{"id": credential_id("ses", s["session_sha256"]), "kind": "session",
                "role": s["role"], "party": s["party"], "label": s["label"],
                "created_at": s["created_at"], "last_seen_at": s["last_seen_at"],
                "expires_at": s["expires_at"], "client": s["client"]} for s in sessions])


def revoke(settings: Settings, credential: str) -> dict:
    """Revoke the token or session listed as ``credential`` (a token's sessions end with
    it); return what was revoked. UnknownCredential when nothing active has that id."""
    now = _now().isoformat()
    kind, _, prefix = credential.partition("-")
    with database.connection(settings.database) as conn:
        if kind == "tok" and len(prefix) >= 8:
            match = [t for t in security.select_tokens(conn)
                     if t["token_sha256"].startswith(prefix) and not t["revoked_at"]]
            if len(match) == 1 and security.revoke_token(conn, match[0]["token_sha256"], now):
                security.insert_security_event(conn, now, "token-revoked", match[0]["party"],
                                               None, {"id": credential})
                return {"id": credential, "kind": "token", "role": match[0]["role"],
                        "party": match[0]["party"], "label": match[0]["label"]}
        if kind == "ses" and len(prefix) >= 8:
            match = [s for s in security.select_sessions(conn, now)
                     if s["session_sha256"].startswith(prefix)]
            if len(match) == 1:
                security.revoke_sessions(conn, now, session_sha256=match[0]["session_sha256"])
                return {"id": credential, "kind": "session", "role": match[0]["role"],
                        "party": match[0]["party"], "label": match[0]["label"]}
    raise UnknownCredential(f"没有有效的凭据 {credential!r}",
                            f"no active token or session {credential!r} (see tokens list)")
