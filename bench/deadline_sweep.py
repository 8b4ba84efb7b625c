"""Deadline sweep benchmark: the server's own deadline worker
issues AcceptanceRejectionExpiry (sealed and timestamped by the signer) for
10,000 letters whose window has closed, first among 20,000 letters (the
baseline), then among 1,000,000, in the same run on PostgreSQL.

Letters are written straight into the database (this is data setup: a million
deposits through the API would take hours here); the sweep itself is the real
worker of a running server. Usage:
  python bench/deadline_sweep.py [--due 10000] [--total 1000000]
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from pathlib import Path

from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.stack import POSTGRES, running_stack

# Letters that no sweep should touch: most answered, some still within their window.
FILLER = """
INSERT INTO letters (id, reference, sender_id, recipient_id, request_id, state, deposit_time,
                     notification_time, acceptance_deadline, decision_time, legal_hold)
SELECT gen_random_uuid(), :prefix || g, :sender, :recipient, :prefix || g,
       CASE WHEN g % 10 = 0 THEN 'notified'::letter_state ELSE 'accepted'::letter_state END,
       now() - interval '3 days', now() - interval '3 days',
       CASE WHEN g % 10 = 0 THEN now() + interval '10 days' END,
       CASE WHEN g % 10 = 0 THEN NULL ELSE now() - interval '2 days' END, false
FROM generate_series(1, :count) AS g
"""
DUE = """
INSERT INTO letters (id, reference, sender_id, recipient_id, request_id, state, deposit_time,
                     notification_time, acceptance_deadline, legal_hold)
SELECT gen_random_uuid(), :prefix || g, :sender, :recipient, :prefix || g, 'notified',
       now() - interval '17 days', now() - interval '17 days', now() - interval '1 hour', false
FROM generate_series(1, :count) AS g
"""
PARTS = """
INSERT INTO letter_parts (letter_id, part_index, filename, media_type, size_bytes, sha256)
SELECT id, 0, 'letter.pdf', 'application/pdf', 10240, sha256(id::text::bytea)
FROM letters WHERE request_id LIKE :prefix || '%'
"""
WAITING = "SELECT count(*) FROM letters WHERE state = 'notified' AND acceptance_deadline <= now()"


def _sweep(engine: object, ids: dict[str, str], due: int) -> float:
    """Writes ``due`` letters past their deadline; seconds until all are expired."""
    prefix = f"D{uuid.uuid4().hex[:8]}-"
    with engine.begin() as connection:  # type: ignore[attr-defined]
        connection.execute(text(DUE), {"prefix": prefix, "count": due, **ids})
        connection.execute(text(PARTS), {"prefix": prefix})
    start = time.perf_counter()
    while True:
        with engine.connect() as connection:  # type: ignore[attr-defined]
            if connection.execute(text(WAITING)).scalar_one() == 0:
                return time.perf_counter() - start
        time.sleep(0.1)


def _fill(engine: object, ids: dict[str, str], count: int) -> None:
    prefix = f"F{uuid.uuid4().hex[:8]}-"
    with engine.begin() as connection:  # type: ignore[attr-defined]
        connection.execute(text(FILLER), {"prefix": prefix, "count": count, **ids})
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:  # type: ignore[attr-defined]
        connection.execute(text("ANALYZE letters"))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--due", type=int, default=10_000)
    parser.add_argument("--total", type=int, default=1_000_000)
    parser.add_argument("--postgres", default=POSTGRES)
    args = parser.parse_args()
    with running_stack(
        server_processes=1,
        postgres=args.postgres,
        run_workers=True,
        settings={"LRE_SERVER_EXPIRY_INTERVAL_S": "0.2"},
    ) as stack:
        engine = create_engine(stack.database_url)
        ids = {
            "sender": stack.sender.removeprefix("parties/"),
            "recipient": stack.recipient.removeprefix("parties/"),
        }
        _fill(engine, ids, args.due)
        small = _sweep(engine, ids, args.due)
        _fill(engine, ids, args.total - 3 * args.due)
        large = _sweep(engine, ids, args.due)
        with engine.connect() as connection:
            letters = connection.execute(text("SELECT count(*) FROM letters")).scalar_one()
            proofs = connection.execute(
                text("SELECT count(*) FROM evidence WHERE event = 'AcceptanceRejectionExpiry'")
            ).scalar_one()
        engine.dispose()
    assert proofs == 2 * args.due, proofs
    print(f"deadline sweep, {args.due} letters due, 1 server process, signer 2 processes")
    print(
        f"baseline: among {2 * args.due:>9,} letters: {small:6.1f} s ({args.due / small:5.0f} proofs/s)"
    )
    print(
        f"          among {letters:>9,} letters: {large:6.1f} s ({args.due / large:5.0f} proofs/s)"
    )
    print(f"ratio large/baseline: {large / small:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
