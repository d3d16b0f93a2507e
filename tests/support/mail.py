"""A real SMTP server (aiosmtpd) on loopback that keeps every message it receives."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from email import message_from_bytes
from email.header import decode_header, make_header
from email.message import Message

from aiosmtpd.controller import Controller

from tests.support.net import free_port


class Inbox:
    """What the server received: (recipients, message) pairs, in order."""

    def __init__(self) -> None:
        self.messages: list[tuple[tuple[str, ...], Message]] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
        message = message_from_bytes(envelope.content)
        self.messages.append((tuple(envelope.rcpt_tos), message))
        return "250 OK"

    def subjects(self) -> list[str]:
        """Return the decoded subject of every message."""
        return [str(make_header(decode_header(m["Subject"]))) for _, m in self.messages]


def body(message: Message) -> str:
    """Return the decoded text of a single-part message."""
    return message.get_payload(decode=True).decode("utf-8")


@contextlib.contextmanager
def smtp_server() -> Iterator[tuple[Inbox, int]]:
    """Serve SMTP on a free loopback port; yield its inbox and port, stop it afterwards."""
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield inbox, controller.port
    finally:
        controller.stop()
