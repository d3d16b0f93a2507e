"""Who is calling: roles, principals, and the access tokens that name them. Tokens are
random, shown once, and stored only as SHA-256. What a principal may do is the policy's
(``pipeline.people.policy``).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from pipeline.config import Settings
from pipeline.errors import BadInput, UnknownParty
from pipeline.record import database


class Role(StrEnum):
    """What a token is for: administering, acting as one party, or auditing."""

    ADMIN = "admin"
    PARTY = "party"
    AUDITOR = "auditor"


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
    with database.connection(settings.database_path) as conn:
        # Checked here rather than through pipeline.people.parties, which loads the signing
        # library: the command line imports this module for its role names.
        if party and database.select_party(conn, party) is None:
            raise UnknownParty.named(party)
        database.insert_token(conn, _digest(token), role, party, label or role,
                              datetime.now(UTC).isoformat())
    return token


def principal_for(settings: Settings, token: str) -> Principal | None:
    """Return who holds ``token``, or None for an unknown token."""
    with database.connection(settings.database_path) as conn:
        row = database.select_token(conn, _digest(token))
    if row is None:
        return None
    return Principal(role=Role(row["role"]), party=row["party"], label=row["label"])
