"""Mailing benchmark: one mailing of 1,000 recipients with a 1 MB
document over gRPC (PostgreSQL, real signer, the server's own workers sending
the notices to a Maildir).

Prints the time from the first byte sent to the `Mailing` answer, the
database's growth (against the one copy of the content it should hold), the
notices sent per second until all are out, and the server's peak resident
memory above its level before the mailing. Usage:
  python bench/mailing.py [--recipients 1000] [--megabytes 1]
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
import uuid
from pathlib import Path

import grpc
from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.stack import POSTGRES, running_stack
from lre.client.mailing import mailing_requests
from lre.v1 import custody_pb2_grpc, identity_pb2, identity_pb2_grpc

MB = 1024 * 1024


def _memory_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise LookupError(field)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--recipients", type=int, default=1000)
    parser.add_argument("--megabytes", type=float, default=1.0)
    parser.add_argument("--postgres", default=POSTGRES)
    args = parser.parse_args()
    size = int(args.megabytes * MB)
    document = os.urandom(size)
    settings = {"LRE_SERVER_OUTBOX_INTERVAL_S": "0.2"}
    with running_stack(
        server_processes=1, postgres=args.postgres, run_workers=True, settings=settings
    ) as stack:
        pid = stack.server.pid
        engine = create_engine(stack.database_url)

        def database_bytes() -> int:
            with engine.connect() as db:
                return int(db.scalar(text("SELECT pg_database_size(current_database())")))

        def notices_sent() -> int:
            with engine.connect() as db:
                return int(
                    db.scalar(
                        text(
                            "SELECT count(*) FROM outbox_messages"
                            " WHERE kind = 'letter_waiting' AND state = 'sent'"
                        )
                    )
                )

        with grpc.insecure_channel(stack.address) as channel:
            identity = identity_pb2_grpc.IdentityServiceStub(channel)
            custody = custody_pb2_grpc.CustodyServiceStub(channel)
            run = uuid.uuid4().hex[:6]
            recipients = [
                (
                    identity.CreateParty(
                        identity_pb2.CreatePartyRequest(
                            request_id=f"{run}-{i}",
                            party=identity_pb2.Party(
                                kind=identity_pb2.PARTY_KIND_LEGAL_PERSON,
                                professional=True,
                                company_name=f"Copropriétaire {i}",
                                email=f"lot-{i}@example.org",
                            ),
                        )
                    ).name,
                    f"lot {i}",
                )
                for i in range(args.recipients)
            ]
            time.sleep(2)  # let the size settle after the parties' writes
            size_before = database_bytes()
            rss_before = _memory_kb(pid, "VmRSS")
            peak = [rss_before]
            stop = threading.Event()

            def watch() -> None:
                # VmHWM is the process's peak since it started; sample RSS instead.
                while not stop.is_set():
                    peak[0] = max(peak[0], _memory_kb(pid, "VmRSS"))
                    time.sleep(0.05)

            watcher = threading.Thread(target=watch, daemon=True)
            watcher.start()
            start = time.perf_counter()
            mailing = custody.DepositMailing(
                mailing_requests(
                    f"bench-{run}",
                    "bench",
                    recipients,
                    [("convocation.pdf", "application/pdf", document)],
                ),
                metadata=(("authorization", f"Bearer {stack.sender_token}"),),
                timeout=600,
            )
            answered = time.perf_counter() - start
            assert mailing.letter_count == args.recipients, mailing.refusals
            size_after = database_bytes()
            sent_start = time.perf_counter()
            first_sent = None
            while (sent := notices_sent()) < args.recipients:
                if sent and first_sent is None:
                    first_sent = time.perf_counter()
                if time.perf_counter() - sent_start > 900:
                    raise SystemExit(f"only {sent} notices out after 900 s")
                time.sleep(0.2)
            all_out = time.perf_counter() - sent_start
            stop.set()
            watcher.join()
        engine.dispose()
    growth = size_after - size_before
    print(
        f"mailing: {args.recipients} recipients, {size / MB:.1f} MB document;"
        " PostgreSQL; 1 server process, 2 signer processes"
    )
    print(f"first byte to the Mailing answer: {answered:.1f} s")
    print(
        f"database growth: {growth / MB:.1f} MB"
        f" (content {size / MB:.1f} MB, {(growth - size) / args.recipients / 1024:.1f} KB"
        " per letter beyond it)"
    )
    print(
        f"notices: all {args.recipients} sent {all_out:.1f} s after the answer,"
        f" {args.recipients / all_out:.0f}/s"
    )
    print(
        f"server peak RSS above its level before the mailing: {(peak[0] - rss_before) / 1024:.0f} MB"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
