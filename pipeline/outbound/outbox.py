"""The mail outbox: a step records the mails it wants sent in the same transaction as its
ledger events; delivery follows, outside that transaction, and is retried until it works.

Nothing that goes wrong while delivering — a relay that is down, an address the relay
refuses, a message that cannot be built — can undo or fail the step that queued the mail:
the attempt is recorded on the mail's row and retried with exponential backoff (the
webhooks' schedule), and after ``MAX_ATTEMPTS`` the mail is given up, still on record.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pipeline.config import Settings
from pipeline.outbound.mail import Mail, send
from pipeline.outbound.webhooks import backoff
from pipeline.record import database, outbox

log = logging.getLogger(__name__)
MAIL = "mail"
MAX_ATTEMPTS = 20
# A claimed mail is someone's to send for this long (longer than the SMTP timeout).
LEASE = timedelta(minutes=2)


@dataclass(frozen=True)
class MailDelivery:
    """One delivery attempt: which outbox row, for which document, and how it went."""

    outbox_id: int
    document_id: str | None
    to: tuple[str, ...]
    delivered: bool
    status: str


def stamp(moment: datetime | None = None) -> str:
    """Return ``moment`` (default: now) as the UTC text the outbox compares."""
    return (moment or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="microseconds")


def mail_row(mail: Mail, document_id: str | None = None, event: int | None = None) -> dict:
    """Return the outbox row for ``mail``; ``event`` indexes the ledger event it goes with
    when both are written together (``ledger.append(..., outbox=[row])``)."""
    return {"channel": MAIL, "document_id": document_id, "payload": mail.as_payload(),
            "created_at": stamp(), "event": event}


def queue_mail(settings: Settings, mails: list[Mail], document_id: str | None = None) -> None:
    """Queue ``mails`` in a transaction of their own (mails no ledger event announces)."""
    rows = [mail_row(mail, document_id) for mail in mails]
    for row in rows:
        row.pop("event")
    with database.connection(settings.database) as conn:
        outbox.queue_messages(conn, rows)


def deliver_mail(settings: Settings, now: datetime | None = None,
                 limit: int = 100) -> list[MailDelivery]:
    """Try every queued mail that is due; return what was attempted. Never raises for a
    mail: each failure is recorded on its row and retried later."""
    moment = now or datetime.now(UTC)
    with database.connection(settings.database) as conn:
        rows = outbox.claim_due(conn, MAIL, stamp(moment), stamp(moment + LEASE), limit)
        return [_attempt(settings, conn, row, moment) for row in rows]


def _attempt(settings: Settings, conn, row: dict, moment: datetime) -> MailDelivery:
    mail = Mail.from_payload(row["payload"])
    try:
        message_id = send(settings, mail)
    except Exception as exc:  # noqa: BLE001 - a mail's trouble stays on its row
        status = f"{type(exc).__name__}: {exc}"
        attempts = row["attempts"] + 1
        if attempts >= MAX_ATTEMPTS:
            outbox.record_attempt(conn, row["id"], status=status, gave_up_at=stamp(moment))
            log.error("mail %s given up after %d attempts: %s", row["id"], attempts, status)
        else:
            outbox.record_attempt(conn, row["id"], status=status,
                                  next_attempt_at=stamp(moment + backoff(attempts)))
            log.warning("mail %s not delivered (attempt %d): %s", row["id"], attempts, status)
        return MailDelivery(row["id"], row["document_id"], mail.to, False, status)
    outbox.record_attempt(conn, row["id"], status="sent", delivered_at=stamp(moment),
                          message_id=message_id)
    return MailDelivery(row["id"], row["document_id"], mail.to, True, "sent")
