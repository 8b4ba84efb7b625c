"""The e-mails the walkthroughs read where `make run` delivers mail (a local
Maildir): the recipient's notice, the enrolment codes."""

from __future__ import annotations

import email
import email.header
import mailbox
import re
import time
from pathlib import Path

from lre.client.parties import EnrolmentCodes


def plain_text(message: email.message.Message) -> str:
    """The message's first text/plain part, decoded."""
    for part in message.walk():
        if part.get_content_type() == "text/plain":
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                return payload.decode(part.get_content_charset() or "utf-8", "replace")
    return ""


def enrolment_code_in(message: email.message.Message, party: str) -> str | None:
    """The enrolment code in ``message`` if it is the one sent to ``party``."""
    pattern = rf"Account: {re.escape(party)}\s+Enrolment code: ([A-Z0-9-]+)"
    found = re.search(pattern, plain_text(message))
    return found.group(1) if found else None


def maildir_enrolment_codes(maildir: Path, timeout_s: float = 60) -> EnrolmentCodes:
    """Enrolment codes as the party reads them, in ``maildir`` (where `make
    run` delivers mail): the newest e-mail naming its account, deleted once
    read (the code is good once)."""

    def code(party: str) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if (maildir / "new").exists():
                box = mailbox.Maildir(maildir, create=False)
                found = []
                for key in list(box.iterkeys()):
                    try:
                        message = box.get_message(key)
                    except (KeyError, FileNotFoundError):  # removed by another client
                        continue
                    found_code = enrolment_code_in(message, party)
                    if found_code:
                        found.append((message.get_date(), found_code, key))
                if found:
                    _, newest, _ = max(found)
                    for *_, key in found:
                        box.remove(key)
                    return newest
            time.sleep(0.2)
        raise SystemExit(f"no enrolment code for {party} in {maildir} after {timeout_s:.0f} s")

    return code


def notice(
    maildir: Path, reference: str, recipient_email: str, timeout_s: float = 60
) -> email.message.Message:
    """The recipient's notice of the letter ``reference`` (the sender's proof
    of deposit names the reference too)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if (maildir / "new").exists():
            box = mailbox.Maildir(maildir, create=False)
            for key in list(box.iterkeys()):
                try:
                    message = email.message_from_bytes(box.get_bytes(key))
                except (KeyError, FileNotFoundError):  # removed by another client
                    continue
                subject = email.header.make_header(email.header.decode_header(message["Subject"]))
                if reference in str(subject) and message["To"] == recipient_email:
                    return message
        time.sleep(0.5)
    raise SystemExit(f"no notification for {reference} in {maildir} after {timeout_s:.0f} s")
