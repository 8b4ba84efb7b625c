"""In-process cost of a deposit: ``DepositService.deposit`` called in a loop
(10 KB letters, sequential, after a warm-up) against PostgreSQL and a real
signer. Prints the calling process's CPU per deposit (``process_time``: the
server's own work, without PostgreSQL and the signer) and the wall time.
Steadier than the gRPC benchmark on a busy machine. Usage:
  python bench/deposit_cost.py [--deposits 600]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.stack import running_stack
from lre.server.adapters.signer import ContentKeys, SignerClient
from lre.server.clock import utcnow
from lre.server.domain import identity
from lre.server.domain.identity import AssuranceLevel, FactorCategory
from lre.server.services.custody import (
    CustodyPolicy,
    DeclaredPart,
    DepositService,
    EvidenceRecorder,
)
from lre.server.storage import db
from lre.server.storage.store import Stores

LETTER = os.urandom(10 * 1024)
WARMUP = 100


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--deposits", type=int, default=600)
    args = parser.parse_args()
    with running_stack(server_processes=1, signer_processes=1) as stack:
        engine = db.make_engine(stack.database_url)
        sessions = db.sessions(engine)
        signer = SignerClient(stack.signer_address)
        deposits = DepositService(
            Stores(sessions),
            ContentKeys(signer),
            EvidenceRecorder(signer, "Bench provider", "2.999.319522.1", utcnow),
            CustodyPolicy("Bench provider", 10**9, 399, "EUR"),
            utcnow,
        )
        now = utcnow()
        session = identity.Session(
            stack.sender.removeprefix("parties/"),
            AssuranceLevel.HIGH,
            frozenset({FactorCategory.KNOWLEDGE, FactorCategory.POSSESSION}),
            True,
            now,
            now + dt.timedelta(hours=1),
        )
        recipient = uuid.UUID(stack.recipient.removeprefix("parties/"))
        parts = [DeclaredPart("letter.pdf", "application/pdf", len(LETTER))]
        walls, cpus = [], []
        for i in range(WARMUP + args.deposits):
            wall, cpu = time.perf_counter(), time.process_time()
            deposits.deposit(session, str(uuid.uuid4()), recipient, parts, iter([(0, LETTER)]))
            if i >= WARMUP:
                walls.append(time.perf_counter() - wall)
                cpus.append(time.process_time() - cpu)
        signer.close()
        engine.dispose()
    print(f"{args.deposits} deposits of 10 KB, sequential, PostgreSQL, one signer process")
    print(f"CPU per deposit (this process): mean {statistics.mean(cpus) * 1000:.2f} ms")
    print(f"wall per deposit:               p50 {statistics.median(walls) * 1000:.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
