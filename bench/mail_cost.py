"""What a proof e-mail costs to build and to write for SMTP, in CPU.

The message as the outbox sends a proof: text and HTML alternatives, the
signed PDF (75 KB by default, a proof's size), the evidence JSON and its
seal attached. Baseline, same run: the standard library's way, the
attachments made by MIMEApplication and the message written as smtplib's
send_message writes it (a copy, ">From " quoting, CRLF); then this
project's (lre.server.services.notification.attachment and
lre.server.adapters.mail.wire_bytes). Both write the same bytes but for
the quoting, which the script checks. Single process, no I/O.

Usage:
  python bench/mail_cost.py [--pdf-kb 75] [--rounds 300]
"""

from __future__ import annotations

import argparse
import copy
import io
import os
import sys
import time
from collections.abc import Callable
from email.generator import BytesGenerator
from email.message import Message
from email.mime.application import MIMEApplication
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lre.server.adapters.mail import wire_bytes
from lre.server.services.notification import attachment

Part = Callable[[bytes, str], Message]


def _message(part: Part, pdf: bytes, evidence: bytes, seal: bytes) -> Message:
    body = MIMEMultipart("alternative")
    body.attach(MIMEText("Preuve de dépôt / Proof of deposit\n" * 30, "plain", "utf-8"))
    body.attach(MIMEText("<p>Preuve de dépôt / Proof of deposit</p>\n" * 30, "html", "utf-8"))
    body.set_boundary("=_bench_alternative")
    message = MIMEMultipart("mixed")
    message.set_boundary("=_bench_mixed")
    message.attach(body)
    for name, subtype, data in (
        ("p.pdf", "pdf", pdf),
        ("e.json", "json", evidence),
        ("e.p7m", "pkcs7-mime", seal),
    ):
        attached = part(data, subtype)
        attached.add_header("Content-Disposition", "attachment", filename=name)
        message.attach(attached)
    message["From"], message["To"], message["Subject"] = "n@lre.invalid", "d@x.invalid", "Preuve"
    return message


def _send_message_bytes(message: Message) -> bytes:
    """What smtplib's send_message writes (Python 3.11): a copy, flattened
    with the message's policy at CRLF, ">From " quoting on."""
    out = io.BytesIO()
    BytesGenerator(out, policy=message.policy.clone(linesep="\r\n")).flatten(
        copy.copy(message), linesep="\r\n"
    )
    return out.getvalue()


def _cpu_ms(rounds: int, work: Callable[[], object]) -> float:
    start = time.process_time()
    for _ in range(rounds):
        work()
    return (time.process_time() - start) / rounds * 1000


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pdf-kb", type=int, default=75)
    parser.add_argument("--rounds", type=int, default=300)
    args = parser.parse_args()
    pdf, evidence, seal = os.urandom(args.pdf_kb * 1024), os.urandom(3000), os.urandom(5000)
    stdlib = _message(lambda d, s: MIMEApplication(d, s), pdf, evidence, seal)
    ours = _message(attachment, pdf, evidence, seal)
    assert _send_message_bytes(stdlib) == _send_message_bytes(ours)  # the same parts
    assert wire_bytes(ours) == _send_message_bytes(ours).replace(b"\n>From ", b"\nFrom ")
    rows = (
        (
            "build (attachments encoded)",
            _cpu_ms(
                args.rounds,
                lambda: _message(lambda d, s: MIMEApplication(d, s), pdf, evidence, seal),
            ),
            _cpu_ms(args.rounds, lambda: _message(attachment, pdf, evidence, seal)),
        ),
        (
            "write for SMTP",
            _cpu_ms(args.rounds, lambda: _send_message_bytes(stdlib)),
            _cpu_ms(args.rounds, lambda: wire_bytes(ours)),
        ),
    )
    print(f"a proof e-mail with a {args.pdf_kb} KB PDF, CPU ms a message, {args.rounds} rounds")
    print(f"{'':30} | {'standard library':>16} | {'this tree':>9} | ratio")
    for name, baseline, measured in rows:
        print(f"{name:30} | {baseline:16.2f} | {measured:9.2f} | {measured / baseline:.2f}")
    total = (sum(r[1] for r in rows), sum(r[2] for r in rows))
    print(f"{'both':30} | {total[0]:16.2f} | {total[1]:9.2f} | {total[1] / total[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
