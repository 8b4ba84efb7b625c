"""An SMTP server on 127.0.0.1 (aiosmtpd) that keeps what it receives, and
the readings of the e-mails it keeps."""

from __future__ import annotations

import email
import email.header
import mailbox
import re
import time
from collections.abc import Callable
from email.message import Message
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope

from lre.client.maildir import plain_text


class Inbox:
    """An SMTP server that keeps what it receives; ``refuse`` answers 550 to
    RCPT, ``defer`` 451 to RCPT for those addresses; ``on_data`` runs before a
    message is accepted (while the dispatcher waits for the reply)."""

    def __init__(
        self,
        port: int,
        refuse: bool = False,
        defer: frozenset[str] = frozenset(),
        on_data: Callable[[Message], None] | None = None,
    ) -> None:
        self.messages: list[Message] = []
        self.raw: list[bytes] = []
        self.senders: list[str] = []  # each message's envelope sender (MAIL FROM)
        self.refuse = refuse
        self.defer = defer
        self.on_data = on_data
        self.controller = Controller(self, hostname="127.0.0.1", port=port)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Envelope, address: str, options: Any
    ) -> str:
        if self.refuse:
            return "550 5.1.1 no such mailbox"
        if address in self.defer:
            return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        message = email.message_from_bytes(raw)
        if self.on_data is not None:
            self.on_data(message)
        self.raw.append(raw)
        self.senders.append(envelope.mail_from or "")
        self.messages.append(message)
        return "250 Message accepted"

    def __enter__(self) -> Inbox:
        self.controller.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.controller.stop()


def text_of(message: Message) -> str:
    """The text parts of an e-mail (plain and HTML), decoded."""
    texts = []
    for part in message.walk():
        payload = part.get_payload(decode=True)
        if part.get_content_maintype() == "text" and isinstance(payload, bytes):
            texts.append(payload.decode())
    return "\n".join(texts)


def subject_of(message: Message) -> str:
    return str(email.header.make_header(email.header.decode_header(message["Subject"])))


def notice_in(maildir: Path, to: str, timeout_s: float = 30) -> tuple[str, str]:
    """Reference and verification code of the notice to ``to``, as the
    addressee reads them in its mailbox (a Maildir the outbox delivers to)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if (maildir / "new").exists():
            for message in mailbox.Maildir(maildir, create=False):
                text = plain_text(email.message_from_bytes(message.as_bytes()))
                found = re.search(r"Reference: (\S+)\s+Verification code: (\S+)", text)
                if message["To"] == to and found:
                    return found.group(1), found.group(2)
        time.sleep(0.2)
    raise AssertionError(f"no notice to {to} in {maildir}")
