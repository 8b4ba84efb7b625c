"""The SMTP transport sends to the To address as one recipient, and to nothing
that is not one plain address (a stored "root,victim@example.org" would be two
recipients to smtplib), against a real SMTP server (aiosmtpd)."""

from __future__ import annotations

from email.message import EmailMessage

import pytest

from lre.server.adapters.mail import PermanentFailure, SmtpTransport
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
