"""Sending e-mail: SMTP for production, a local Maildir for `make run`.

Transports say whether a failure is worth retrying (TemporaryFailure) or
final (PermanentFailure: the address or the message was refused).
"""

from __future__ import annotations

import contextlib
import email
import email.generator
import email.message
import email.policy
import email.utils
import io
import mailbox
import re
import smtplib
import ssl
import threading
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qs, urlsplit

from lre.server.domain.addresses import email_problem
from lre.server.domain.records import Bounce


class TemporaryFailure(Exception):
    """Try again later (connection refused, timeout, 4xx)."""


class PermanentFailure(Exception):
    """Retrying will not help (5xx: unknown mailbox, message refused)."""


class MailTransport(Protocol):
    def send(self, message: Message) -> None: ...


# A line end as the generator finds them.
_LINE_END = re.compile(r"\r\n|\r|\n")


class _Generator(email.generator.BytesGenerator):
    """The standard generator, writing each text in one piece: the base
    class writes a base64 attachment line by line, two writes a line (a
    proof's PDF is over a thousand lines)."""

    def _write_lines(self, lines: str) -> None:
        assert self.policy is not None  # set by flatten
        if lines:
            self.write(_LINE_END.sub(self.policy.linesep, lines))


def wire_bytes(message: Message) -> bytes:
    """The message as SMTP's DATA carries it: lines ended by CRLF, and no
    ">From " quoting (an mbox convention smtplib's send_message applies)."""
    out = io.BytesIO()
    policy = message.policy.clone(linesep="\r\n")
    _Generator(out, mangle_from_=False, policy=policy).flatten(message)
    return out.getvalue()


@dataclass(frozen=True)
class MaildirTransport:
    path: Path

    def send(self, message: Message) -> None:
        # mailbox creates tmp/, new/ and cur/ only when it creates the folder itself.
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            mailbox.Maildir(self.path, create=True).add(message)
        except OSError as exc:
            raise TemporaryFailure(f"{type(exc).__name__} writing to the Maildir") from None


@dataclass
class SmtpTransport:
    """SMTP with STARTTLS and authentication. Each thread keeps its connection
    open between messages (a dispatcher sends in bursts); a connection the
    server closed meanwhile is reopened once."""

    host: str
    port: int
    starttls: bool
    username: str | None = None
    password: str | None = None
    timeout_s: float = 30.0
    _local: threading.local = field(default_factory=threading.local, repr=False)

    def _connect(self) -> smtplib.SMTP:
        smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout_s)
        if self.starttls:
            smtp.starttls(context=ssl.create_default_context())
        if self.username:
            smtp.login(self.username, self.password or "")
        return smtp

    def _drop(self) -> None:
        smtp = getattr(self._local, "smtp", None)
        self._local.smtp = None
        if smtp is not None:
            with contextlib.suppress(OSError):
                smtp.close()

    def _send_once(self, message: Message) -> None:
        smtp = getattr(self._local, "smtp", None)
        if smtp is None:
            smtp = self._local.smtp = self._connect()
        # One envelope recipient, the To address itself: smtplib would make
        # "root,victim@example.org" two.
        to = str(message["To"])
        if email_problem(to) is not None:
            raise PermanentFailure("the recipient is not one e-mail address")
        sender = email.utils.getaddresses([str(message["From"])])[0][1]
        smtp.sendmail(sender, [to], wire_bytes(message))

    def send(self, message: Message) -> None:
        try:
            reused = getattr(self._local, "smtp", None) is not None
            try:
                self._send_once(message)
            except (smtplib.SMTPServerDisconnected, OSError):
                if not reused:
                    raise
                self._drop()  # closed while idle: one fresh connection
                self._send_once(message)
        except smtplib.SMTPRecipientsRefused as exc:
            self._reset()
            codes = [code for code, _ in exc.recipients.values()]
            if all(code >= 500 for code in codes):
                raise PermanentFailure(f"recipient refused ({codes[0]})") from None
            raise TemporaryFailure(f"recipient deferred ({codes[0]})") from None
        except smtplib.SMTPResponseException as exc:
            self._reset()
            if exc.smtp_code >= 500:
                raise PermanentFailure(f"message refused ({exc.smtp_code})") from None
            raise TemporaryFailure(f"server deferred ({exc.smtp_code})") from None
        except (TimeoutError, OSError, smtplib.SMTPException) as exc:
            self._drop()
            where = f"{self.host}:{self.port}"
            raise TemporaryFailure(f"{type(exc).__name__} talking to {where}") from None

    def _reset(self) -> None:
        """After a refused message the connection stays usable once reset."""
        smtp = getattr(self._local, "smtp", None)
        try:
            if smtp is not None:
                smtp.rset()
        except (OSError, smtplib.SMTPException):
            self._drop()


def transport_from_url(
    url: str, password: str | None = None, timeout_s: float = 30.0
) -> MailTransport:
    """`maildir:/path` or `smtp://[user@]host[:port][?starttls=true]`."""
    parts = urlsplit(url)
    if parts.scheme == "maildir":
        return MaildirTransport(Path(parts.path or parts.netloc))
    if parts.scheme == "smtp" and parts.hostname:
        options = parse_qs(parts.query)
        return SmtpTransport(
            host=parts.hostname,
            port=parts.port or 25,
            starttls=options.get("starttls", ["false"])[0].lower() in ("1", "true", "yes"),
            username=parts.username,
            password=password,
            timeout_s=timeout_s,
        )
    raise ValueError("mail_transport must be maildir:/path or smtp://host[:port]")


def parse_delivery_status(raw: bytes) -> Bounce:
    """Reads a delivery status notification (RFC 3464): the Message-ID of the
    message that failed, whether the failure is permanent (Action: failed, or
    a 5.x.x status), and the remote server's diagnostic. ValueError if ``raw``
    is not one."""
    report = email.message_from_bytes(raw, policy=email.policy.default)
    if report.get_content_type() != "multipart/report":
        raise ValueError("not a delivery status notification (multipart/report)")
    status_part = next(
        (p for p in report.walk() if p.get_content_type() == "message/delivery-status"), None
    )
    if status_part is None:
        raise ValueError("no message/delivery-status part")
    # Per-message fields first, then one block per recipient.
    blocks = status_part.get_payload()
    recipients = (
        [b for b in blocks[1:] if isinstance(b, email.message.Message)]
        if isinstance(blocks, list)
        else []
    )
    if not recipients:
        raise ValueError("no per-recipient delivery status")
    first = recipients[0]
    action = str(first.get("Action", "")).strip().lower()
    status = str(first.get("Status", "")).strip()
    permanent = action == "failed" or status.startswith("5.")
    diagnostic = str(first.get("Diagnostic-Code", "") or status or action).strip()
    original = next(
        (
            p
            for p in report.walk()
            if p.get_content_type() in ("message/rfc822", "text/rfc822-headers")
        ),
        None,
    )
    message_id = ""
    if original is not None:
        if original.get_content_type() == "message/rfc822":
            inner = original.get_payload()
            headers = inner[0] if isinstance(inner, list) and inner else None
        else:
            headers = email.message_from_string(
                str(original.get_content()), policy=email.policy.default
            )
        if isinstance(headers, email.message.Message):
            message_id = str(headers.get("Message-ID", "")).strip()
    if not message_id:
        raise ValueError("the returned message names no Message-ID")
    return Bounce(message_id, permanent, diagnostic[:500])
