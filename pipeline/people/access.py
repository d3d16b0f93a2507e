"""Who may do what through the API: tokens, roles, and which documents a caller may see.

Roles: ``admin`` (templates, parties, create, void, close), ``party`` (sees only documents
it is a party to; signs, uploads or declines only its own step), ``auditor`` (reads
everything, verifies, exports). Tokens are random, shown once, and stored only as SHA-256.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from pipeline.config import Settings
from pipeline.documents.state import DocumentState, involves
from pipeline.errors import BadInput
from pipeline.people.parties import get_party
from pipeline.record import database

ROLES = ("admin", "party", "auditor")


@dataclass(frozen=True)
class Principal:
    role: str
    party: str | None
    label: str

    def may_see(self, state: DocumentState) -> bool:
        """A party sees only documents it is (or was made) a party to, or created."""
        return self.role in ("admin", "auditor") or involves(state, self.party or "")


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_token(settings: Settings, role: str, party: str | None = None,
                 label: str = "") -> str:
    """Return a new API token (shown once; only its hash is kept)."""
    if role not in ROLES:
        raise BadInput(f"未知角色 {role!r}", f"unknown role {role!r} (one of {', '.join(ROLES)})")
    if role == "party":
        if not party:
            raise BadInput("party 角色的令牌需要 --party", "a party token needs --party")
        get_party(settings, party)
    elif party:
        raise BadInput("只有 party 角色的令牌绑定签署方", "only party tokens name a party")
    token = secrets.token_urlsafe(32)
    with database.connection(settings.database_path) as conn:
        database.insert_token(conn, _digest(token), role, party, label or role,
                              datetime.now(UTC).isoformat())
    return token


def principal_for(settings: Settings, token: str) -> Principal | None:
    """Return who holds ``token``, or None for an unknown token."""
    with database.connection(settings.database_path) as conn:
        row = database.select_token(conn, _digest(token))
    return Principal(**row) if row else None
