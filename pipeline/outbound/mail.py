"""E-mail: reminders, escalations and notices, sent over SMTP to the configured relay."""

from __future__ import annotations

import smtplib
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import make_msgid

from pipeline.config import Settings
from pipeline.errors import OperationFailed


class MailFailed(OperationFailed):
    code = "mail_failed"


@dataclass(frozen=True)
class Mail:
    to: tuple[str, ...]
    subject: str
    body: str


def document_link(settings: Settings, document_id: str) -> str:
    return f"{settings.base_url.rstrip('/')}/documents/{document_id}"


def signing_link(settings: Settings, document_id: str) -> str:
    """Return the link a signer's mail carries: the document page's focused signing view."""
    return f"{document_link(settings, document_id)}?focus=sign"


def send(settings: Settings, mail: Mail) -> str:
    """Send ``mail``; return its Message-ID. MailFailed names an unreachable relay."""
    message = EmailMessage()
    message["From"] = settings.mail_from
    message["To"] = ", ".join(mail.to)
    message["Subject"] = mail.subject
    message_id = make_msgid(domain="countersign")
    message["Message-ID"] = message_id
    message.set_content(mail.body)
    try:
        with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=15) as smtp:
            smtp.send_message(message)
    except (OSError, smtplib.SMTPException) as exc:
        raise MailFailed(f"邮件发送失败（{settings.smtp_host}:{settings.smtp_port}）",
                         f"could not send mail via {settings.smtp_host}:{settings.smtp_port}: "
                         f"{exc}") from None
    return message_id
