"""E-mail: reminders, escalations and notices, sent over SMTP to the configured relay.

Headers are built from values that may come from form data (a document number holds a
department's name): every line or paragraph separator and control character is folded to a
space before it reaches a header, and recipients are parsed as single addresses and given
to the relay explicitly, so no value can add a header or a recipient.
"""

from __future__ import annotations

import re
import smtplib
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import make_msgid

from pipeline.config import Settings
from pipeline.errors import OperationFailed

# Anything that could end a header line: C0/C1 controls and the Unicode line separators.
HEADER_BREAKS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


class MailFailed(OperationFailed):
    code = "mail_failed"


@dataclass(frozen=True)
class Mail:
    to: tuple[str, ...]
    subject: str
    body: str

    def as_payload(self) -> dict:
        """Return the mail as the outbox stores it."""
        return {"to": list(self.to), "subject": self.subject, "body": self.body}

    @classmethod
    def from_payload(cls, payload: dict) -> Mail:
        return cls(tuple(payload["to"]), payload["subject"], payload["body"])


def document_link(settings: Settings, document_id: str) -> str:
    return f"{settings.base_url.rstrip('/')}/documents/{document_id}"


def signing_link(settings: Settings, document_id: str) -> str:
    """Return the link a signer's mail carries: the document page's focused signing view."""
    return f"{document_link(settings, document_id)}?focus=sign"


def header_text(value: str, limit: int = 300) -> str:
    """Return ``value`` as one header line: separators and controls become single spaces."""
    return HEADER_BREAKS.sub(" ", value).strip()[:limit]


def _address(text: str) -> Address:
    """Return ``text`` as exactly one address; MailFailed for anything else."""
    try:
        address = Address(addr_spec=text.strip())
    except (ValueError, IndexError, TypeError) as exc:
        raise MailFailed(f"收件地址无效：{text!r}", f"not a single mail address: {text!r} "
                         f"({exc})") from None
    if not address.username or not address.domain:
        raise MailFailed(f"收件地址无效：{text!r}", f"not a single mail address: {text!r}")
    return address


def build_message(settings: Settings, mail: Mail) -> EmailMessage:
    """Return the message for ``mail`` with safe headers; MailFailed for a bad address."""
    message = EmailMessage()
    message["From"] = _address(settings.mail_from)
    message["To"] = [_address(address) for address in mail.to]
    message["Subject"] = header_text(mail.subject)
    message["Message-ID"] = make_msgid(domain="countersign")
    message.set_content(mail.body)
    return message


def send(settings: Settings, mail: Mail) -> str:
    """Send ``mail``; return its Message-ID. MailFailed names an unreachable relay or a
    message that cannot be built."""
    message = build_message(settings, mail)
    recipients = [str(address.addr_spec) for address in message["To"].addresses]
    try:
        with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=15) as smtp:
            smtp.send_message(message, to_addrs=recipients)
    except (OSError, smtplib.SMTPException) as exc:
        raise MailFailed(f"邮件发送失败（{settings.smtp_host}:{settings.smtp_port}）",
                         f"could not send mail via {settings.smtp_host}:{settings.smtp_port}: "
                         f"{exc}") from None
    return message["Message-ID"]
