"""The SMTP transport sends to the To address as one recipient, and to nothing
that is not one plain address (a stored "root,victim@example.org" would be two
recipients to smtplib), against a real SMTP server (aiosmtpd)."""

from __future__ import annotations

import io
from email.generator import BytesGenerator
from email.message import EmailMessage
from email.mime.application import MIMEApplication
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText

import pytest

from lre.server.adapters.mail import PermanentFailure, SmtpTransport, wire_bytes
from tests.support.mail import Inbox
from tests.support.processes import free_port


def _message(to: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "LRE <notifications@lre.invalid>"
    message["To"] = to
    message["Subject"] = "Lettre recommandée"
    message.set_content("hello")
    return message


def test_one_address_is_one_envelope_recipient_and_a_list_none() -> None:
    port = free_port()
    with Inbox(port) as inbox:
        transport = SmtpTransport("127.0.0.1", port, starttls=False, timeout_s=5)
        transport.send(_message("courrier@dest.example"))
        for smuggled in ("root,victim@example.org", "a@example.org, b@example.org"):
            with pytest.raises(PermanentFailure):
                transport.send(_message(smuggled))
        transport.send(_message("second@dest.example"))  # the connection is still good
    assert [m["To"] for m in inbox.messages] == ["courrier@dest.example", "second@dest.example"]


def test_a_message_goes_as_the_standard_generator_writes_it_without_from_quoting() -> None:
    """What the transport sends is byte for byte the standard library's
    generator's output (CRLF line ends), attachments included; a body line
    starting "From " is sent as it is (">From " quoting is for mbox files)."""
    message = MIMEMultipart("mixed")
    message.attach(MIMEText("From the provider: your letter.\nÀ bientôt\n", "plain", "utf-8"))
    message.attach(MIMEText("From the provider\r\nsecond line\n", "plain", "us-ascii"))
    message.attach(MIMEApplication(bytes(range(256)) * 400, "pdf"))
    message.attach(MIMEApplication(b"", "json"))
    message["From"] = "LRE <notifications@lre.invalid>"
    message["To"] = "courrier@dest.example"
    message["Subject"] = "Preuve"
    expected = io.BytesIO()
    BytesGenerator(expected, mangle_from_=False).flatten(message, linesep="\r\n")
    assert wire_bytes(message) == expected.getvalue()
    port = free_port()
    with Inbox(port) as inbox:
        SmtpTransport("127.0.0.1", port, starttls=False, timeout_s=5).send(message)
    assert inbox.senders == ["notifications@lre.invalid"]
    assert inbox.raw[0].endswith(expected.getvalue())  # the server adds its own headers first
    assert b"\r\nFrom the provider" in inbox.raw[0] and b">From" not in inbox.raw[0]
