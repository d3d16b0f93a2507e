"""The roles a token can carry, on their own: the CLI offers them without loading the
record layer (``pipeline.people.access`` works with them)."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    """What a token is for: administering, acting as one party, or auditing."""

    ADMIN = "admin"
    PARTY = "party"
    AUDITOR = "auditor"
