"""verify-log's journal pass over a large journal: time and peak memory.

Builds a SQLite database (migrated) of ``--entries`` journal entries (default
200,000; a mix of session, failure and proofing kinds as the services write
them) by bulk inserts, with the leaf hashes a sealed head stores
(``tree_nodes``, level 0), then runs the journal pass of ``verify_log``
(every sealed leaf against its stored hash, every journal leaf against its
kind's fields) and prints its wall time, entries per second and the peak RSS
of this process. Usage:
  python bench/journal_pass.py [--entries 200000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import resource
import sys
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import insert

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lre.server.audit import journal as audit_journal
from lre.server.audit.reading import Report, read_only_engine
from lre.server.domain import journal, log
from lre.server.domain.log import LogKind
from lre.server.storage import db, models

KEY = bytes(32)


def _leaf(n: int, at: dt.datetime) -> bytes:
    party = f"parties/{uuid.UUID(int=n)}"
    if n % 3 == 0:
        record = journal.entry(
            LogKind.SESSION_CREATED,
            party,
            at,
            sessionHmac=journal.keyed(KEY, "session", str(n)),
            level="substantial",
            oneTimeElement="totp",
            expireTime=at,
        )
    elif n % 3 == 1:
        record = journal.entry(
            LogKind.AUTHENTICATION_FAILED,
            party,
            at,
            purpose="session",
            reason="wrong_credentials",
            failedAttempts=1,
        )
    else:
        record = journal.entry(LogKind.PASSWORD_SET, party, at)
    return record.leaf()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, default=200_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        url = f"sqlite:///{Path(directory) / 'journal.db'}"
        engine = db.make_engine(url)
        db.migrate(engine)
        started = time.monotonic()
        at = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
        for start in range(0, args.entries, 10_000):
            entries, nodes = [], []
            for n in range(start, min(start + 10_000, args.entries)):
                leaf = _leaf(n, at)
                entries.append(
                    {
                        "id": uuid.uuid4(),
                        "seq": n,
                        "event_time": at,
                        "leaf": leaf,
                        "create_time": at,
                    }
                )
                nodes.append({"level": 0, "position": n, "hash": log.leaf_hash(leaf)})
            with engine.begin() as connection:
                connection.execute(insert(models.LogEntry), entries)
                connection.execute(insert(models.TreeNode), nodes)
        engine.dispose()
        print(f"built {args.entries} journal entries in {time.monotonic() - started:.0f} s")
        reader = read_only_engine(url)
        report = Report()
        started = time.monotonic()
        with reader.connect() as connection:
            audit_journal.check(connection, report, None, None)
        took = time.monotonic() - started
        reader.dispose()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    print(
        f"journal pass: {report.journal} journal entries, {report.defects} problems, "
        f"{took:.1f} s ({args.entries / took:,.0f} entries/s), peak RSS {peak} MiB"
    )
    return 0 if report.ok and report.journal == args.entries else 1


if __name__ == "__main__":
    sys.exit(main())
