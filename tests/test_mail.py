"""E-mail over a real SMTP server (aiosmtpd) on loopback: recipients, headers, Chinese text
on the wire, and a relay that does not answer."""

from __future__ import annotations

import pytest

from pipeline.config import Settings
from pipeline.outbound.mail import Mail, MailFailed, document_link, send
from tests.support.mail import body
from tests.support.net import free_port


def test_a_mail_arrives_with_its_headers_and_chinese_text(smtp, tmp_path):
    inbox, port = smtp
    settings = Settings(data_dir=tmp_path, smtp_port=port, mail_from="countersign@example.com",
                        base_url="https://sign.example.com/")
    link = document_link(settings, "doc-0123456789ab")
    assert link == "https://sign.example.com/documents/doc-0123456789ab"
    subject = "请签署 2024-市场-001 需求确认函 / please sign"
    text = f"张伟已签署，请在 24 小时内签署：\n{link}\n"
    message_id = send(settings, Mail(to=("lina@example.com", "boss@example.com"),
                                     subject=subject, body=text))
    ((recipients, message),) = inbox.messages
    assert recipients == ("lina@example.com", "boss@example.com")
    assert message["From"] == "countersign@example.com"
    assert message["To"] == "lina@example.com, boss@example.com"
    assert message["Message-ID"] == message_id and message_id.endswith("@countersign>")
    assert message["Subject"].isascii()  # RFC 2047 encoded words on the wire
    assert inbox.subjects() == [subject]
    assert body(message).replace("\r\n", "\n") == text  # SMTP lines end in CRLF


def test_an_unreachable_relay_is_a_failure_that_names_it(tmp_path):
    port = free_port()
    settings = Settings(data_dir=tmp_path, smtp_port=port)
    with pytest.raises(MailFailed, match=f"could not send mail via 127.0.0.1:{port}") as caught:
        send(settings, Mail(to=("lina@example.com",), subject="x", body="y"))
    assert caught.value.code == "mail_failed" and f"127.0.0.1:{port}" in caught.value.zh
