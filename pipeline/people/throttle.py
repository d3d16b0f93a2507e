"""Throttling of guesses — key passphrases and sign-in — per party and per client.

The first ``FREE_FAILURES`` failures cost nothing (people mistype); each one after that
doubles the wait before the next attempt (1 s, 2 s, 4 s, … up to ``LONGEST_WAIT``), and
``LOCKOUT_AFTER`` failures lock the party (or the client) out for ``LOCKOUT``. A success
clears the count. Counters live in the database, so every server and signer process sees
the same ones. Every failure and every lockout is a security event shown to the party it
concerns; a failed passphrase is also a ledger event on the document it was tried on.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from pipeline.config import Settings
from pipeline.errors import BadInput
from pipeline.record import database, ledger, security
from signing.errors import WrongPassphrase

PASSPHRASE, SIGN_IN = "passphrase", "sign-in"
FREE_FAILURES = 3
LOCKOUT_AFTER = 10
LONGEST_WAIT = timedelta(minutes=5)
LOCKOUT = timedelta(minutes=15)
T = TypeVar("T")


class TooManyAttempts(BadInput):
    """Too many failures: the next attempt must wait ``retry_after`` seconds (HTTP 429)."""

    code = "too_many_attempts"

    def __init__(self, zh: str, en: str, retry_after: int = 1) -> None:
        super().__init__(zh, en)
        self.retry_after = retry_after

    def __reduce__(self):
        return (self.__class__, (self.zh, self.en, self.retry_after))


def wait_after(failures: int) -> timedelta:
    """Return how long attempts are refused after the ``failures``-th failure in a row."""
    if failures >= LOCKOUT_AFTER:
        return LOCKOUT
    if failures < FREE_FAILURES:
        return timedelta(0)
    return min(LONGEST_WAIT, timedelta(seconds=2 ** (failures - FREE_FAILURES)))


def _keys(action: str, party: str | None, client: str | None) -> list[str]:
    return [f"{action}:{kind}:{value}" for kind, value in (("party", party),
                                                           ("client", client)) if value]


def _now(now: datetime | None) -> datetime:
    return (now or datetime.now(UTC)).astimezone(UTC)


def check(settings: Settings, action: str, party: str | None = None,
          client: str | None = None, now: datetime | None = None) -> None:
    """Raise TooManyAttempts if the party or the client must still wait."""
    moment = _now(now)
    with database.connection(settings.database) as conn:
        rows = security.select_throttle(conn, _keys(action, party, client))
    until = max((datetime.fromisoformat(r["blocked_until"]) for r in rows
                 if r["blocked_until"]), default=None)
    if until is not None and until > moment:
        seconds = math.ceil((until - moment).total_seconds())
        locked = any(r["failures"] >= LOCKOUT_AFTER for r in rows)
        what_zh = "已被临时锁定" if locked else "尝试过于频繁"
        what_en = "temporarily locked after too many failures" if locked else \
            "too many failed attempts"
        raise TooManyAttempts(f"{what_zh}，请 {seconds} 秒后再试",
                              f"{what_en}: try again in {seconds} s", seconds)


def failed(settings: Settings, action: str, party: str | None = None,
           client: str | None = None, detail: dict | None = None,
           now: datetime | None = None) -> int:
    """Count a failure for the party and the client and record it as a security event;
    return the highest count of failures in a row."""
    moment = _now(now)
    stamp = moment.isoformat()
    counts = []
    with database.connection(settings.database) as conn:
        for key in _keys(action, party, client):
            counts.append(security.record_throttle_failure(
                conn, key, stamp, lambda n: (moment + wait_after(n)).isoformat()
                if wait_after(n) else None))
        worst = max(counts, default=0)
        security.insert_security_event(conn, stamp, f"{action}-failed", party, client,
                                       {**(detail or {}), "failures": worst})
        if worst == LOCKOUT_AFTER:
            security.insert_security_event(conn, stamp, "locked-out", party, client, {
                "action": action, "minutes": int(LOCKOUT.total_seconds() // 60)})
    return worst


def succeeded(settings: Settings, action: str, party: str | None = None,
              client: str | None = None) -> None:
    """Forget the failures of the party and the client."""
    with database.connection(settings.database) as conn:
        security.clear_throttle(conn, _keys(action, party, client))


def passphrase_attempt(settings: Settings, party: str, client: str | None,
                       document_id: str, attempt: Callable[[], T]) -> T:
    """Return ``attempt()`` (opening ``party``'s key) unless the party or the client must
    wait. A wrong passphrase is counted, recorded as a security event and as a
    ``passphrase-failed`` ledger event on the document, and raised again."""
    check(settings, PASSPHRASE, party, client)
    try:
        result = attempt()
    except WrongPassphrase:
        failures = failed(settings, PASSPHRASE, party, client, {"document": document_id})
        event = ledger.new_event(document_id, "passphrase-failed", party,
                                 {"party": party, "client": client, "failures": failures})
        with database.connection(settings.database) as conn:
            ledger.append(conn, [event])
        raise
    succeeded(settings, PASSPHRASE, party, client)
    return result


def security_events(settings: Settings, party: str | None = None,
                    limit: int = 20) -> list[dict]:
    """Return the newest security events concerning ``party`` (or everyone)."""
    with database.connection(settings.database) as conn:
        return security.select_security_events(conn, party, limit)
