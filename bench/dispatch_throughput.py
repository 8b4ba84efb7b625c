"""Notification dispatch benchmark: how fast the outbox empties
into a local SMTP server (aiosmtpd on 127.0.0.1), PostgreSQL, real signer.

Setup (not timed): N letters deposited through the server, workers off, so
the outbox holds N recipient notices and N proofs of deposit for the sender.
Then P worker processes of T dispatcher threads each drain it (the
dispatchers are replica-safe: rows are claimed with SKIP LOCKED): each notice is composed,
sent, and recorded with its sealed NotificationForAcceptance evidence; each
proof is composed with the evidence attached and sent. Baseline, same run:
the same number of messages sent by the same SMTP transport, no database.
Usage:
  python bench/dispatch_throughput.py [--letters 1000] [--processes 2] [--threads 3]
"""

from __future__ import annotations

import argparse
import functools
import multiprocessing
import secrets
import sys
import threading
import time
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.deposit_throughput import deposits
from bench.stack import POSTGRES, busy_seconds, running_stack
from lre.server.adapters.at_rest import SecretsKeys
from lre.server.adapters.mail import SmtpTransport
from lre.server.adapters.signer import SignerClient
from lre.server.clock import utcnow
from lre.server.proofs import proof_pdf
from lre.server.services.custody import DecisionService, EvidenceRecorder
from lre.server.services.notification import NotificationPolicy, NotificationService
from lre.server.services.proofs import StoredProofs
from lre.server.storage import db, models
from lre.server.storage.store import Stores
from lre.server.workers.outbox import OutboxDispatcher, RetryPolicy
from lre.server.workers.signer_watch import SignerOutage
from tests.support.processes import free_port


class Sink:
    def __init__(self) -> None:
        self.count = 0
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.count += 1
        return "250 OK"


def _threads(count: int, work: Any) -> float:
    threads = [threading.Thread(target=work) for _ in range(count)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - start


def _warm(_: int) -> None:
    """Nothing: the pool's processes are up, their modules imported."""


def _drain_process(job: tuple[str, str, bytes, int, int]) -> None:
    """One worker process: ``threads`` dispatchers until the outbox is empty."""
    database_url, signer_address, key, port, threads = job
    engine = db.make_engine(database_url)
    sessions = db.sessions(engine)
    signer = SignerClient(signer_address)
    stores = Stores(sessions)
    decisions = DecisionService(
        stores,
        signer,
        EvidenceRecorder(signer, "Bench provider", "2.999.319522.1", utcnow),
        (7, 13),
        utcnow,
    )
    notifications = NotificationService(
        stores,
        NotificationPolicy(SecretsKeys(key), "LRE <n@lre.invalid>", "https://p.invalid"),
        StoredProofs(stores, functools.partial(proof_pdf, signer=signer), utcnow),
    )
    transport = SmtpTransport("127.0.0.1", port, starttls=False, timeout_s=10)

    def drain() -> None:
        dispatcher = OutboxDispatcher(
            stores, transport, notifications, decisions, RetryPolicy(), utcnow, SignerOutage()
        )
        while dispatcher.dispatch() > 0:
            pass

    _threads(threads, drain)
    signer.close()
    engine.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--letters", type=int, default=1000)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=3)
    parser.add_argument("--postgres", default=POSTGRES)
    args = parser.parse_args()
    port = free_port()
    sink = Sink()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    transport = SmtpTransport("127.0.0.1", port, starttls=False, timeout_s=10)
    try:
        # The setup deposits from 16 streams of one caller: above the server's
        # default cap per caller (a protection this benchmark does not measure).
        with running_stack(
            server_processes=1,
            postgres=args.postgres,
            settings={"LRE_SERVER_STREAMS_PER_CALLER": "32", "LRE_SERVER_GRPC_THREADS": "32"},
        ) as stack:
            # Setup: deposits at a rate the server sustains, until there are enough.
            made = 0
            while made < args.letters:
                made += int(
                    deposits(stack.address, stack.sender_token, stack.recipient, 2.0)["count"]
                )
            engine = db.make_engine(stack.database_url)
            with db.sessions(engine)() as session:
                # Counted here: the deposits' warm-up seconds deposit letters too.
                made = session.query(models.Letter).count()
                # The setup's enrolment codes have served (the stack read them
                # from the outbox): only the letters' messages are measured.
                session.query(models.OutboxMessage).filter(
                    models.OutboxMessage.letter_id.is_(None)
                ).delete()
                session.commit()
                messages = session.query(models.OutboxMessage).count()
            engine.dispose()
            # Baseline: as many messages, straight to the SMTP server.
            sample = EmailMessage()
            sample["From"], sample["To"], sample["Subject"] = "a@lre.invalid", "b@x.invalid", "x"
            sample.set_content("registered letter waiting " * 40)
            remaining = [messages]
            lock = threading.Lock()

            def send_raw() -> None:
                while True:
                    with lock:
                        if remaining[0] <= 0:
                            return
                        remaining[0] -= 1
                    transport.send(sample)

            baseline = messages / _threads(args.threads, send_raw)
            received_before = sink.count

            job = (
                stack.database_url,
                stack.signer_address,
                secrets.token_bytes(32),
                port,
                args.threads,
            )
            context = multiprocessing.get_context("spawn")
            with context.Pool(args.processes) as pool:
                # The pool's processes have started and imported: the timing
                # and the machine's CPU count the drain alone.
                pool.map(_warm, range(args.processes))
                start, busy = time.perf_counter(), busy_seconds()
                pool.map(_drain_process, [job] * args.processes)
                elapsed, busy = time.perf_counter() - start, busy_seconds() - busy
            sent = sink.count - received_before
    finally:
        controller.stop()
    assert sent == messages, (sent, messages)
    print(
        f"dispatch: {made} letters deposited, {messages} messages in the outbox "
        f"(notices + proofs of deposit), {args.processes} worker processes x "
        f"{args.threads} dispatcher threads, PostgreSQL"
    )
    print(f"baseline, SMTP only (no database, no seal):  {baseline:7.0f} messages/s")
    print(f"outbox dispatch (compose, send, record):     {sent / elapsed:7.0f} messages/s")
    print(f"ratio dispatch/baseline: {sent / elapsed / baseline:.2f}")
    print(
        f"machine CPU per letter (its notice and its proof of deposit, every process): "
        f"{busy / made * 1000:.1f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
