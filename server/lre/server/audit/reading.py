"""What verify-log's passes share: one read-only snapshot of the database,
streamed in batches, and the report their findings go to."""

from __future__ import annotations

import json
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TextIO

from sqlalchemy import Connection, Engine, Row, create_engine

BATCH = 5_000
# A report keeps this many findings in memory; it counts them all.
KEPT = 10_000


class Progress:
    """A line on stderr at most every ``every_s`` seconds while a long
    command runs, saying how far it got: a million entries take minutes,
    and silence looks like a hang. ``every_s`` 0: none."""

    def __init__(self, command: str, every_s: float, out: TextIO | None = None) -> None:
        self._command = command
        self._every_s = every_s
        self._out = out or sys.stderr
        self._started = time.monotonic()
        self._next = self._started + every_s

    def tick(self, counts: Callable[[], str]) -> None:
        if self._every_s <= 0:
            return
        now = time.monotonic()
        if now >= self._next:
            self._next = now + self._every_s
            elapsed = now - self._started
            print(f"{self._command}: {counts()} ({elapsed:.0f} s)", file=self._out, flush=True)


@dataclass
class Report:
    entries: int = 0
    unsequenced: int = 0
    letters: int = 0
    evidence: int = 0
    heads: int = 0
    published: int = 0
    journal: int = 0
    # Parties and identity records whose personal data was erased, as the
    # journal says: their rows can no longer be read against the proofs.
    erased: int = 0
    archived: int = 0  # evidence whose seal has archive timestamps
    defects: int = 0
    findings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    progress: Progress | None = None

    @property
    def ok(self) -> bool:
        return self.defects == 0

    def tick(self, where: str) -> None:
        """Where the pass ``where`` got, now and then (``progress``)."""
        if self.progress is not None:
            self.progress.tick(
                lambda: (
                    f"{where} pass, {self.entries} log entries, {self.letters} letters, "
                    f"{self.journal} journal entries, {self.defects} problems so far"
                )
            )

    def add(self, finding: str) -> None:
        self.defects += 1
        if len(self.findings) < KEPT:
            self.findings.append(finding)


def read_only_engine(url: str) -> Engine:
    """Its own engine: the service's takes SQLite's write lock on every read."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1]

        def connect() -> sqlite3.Connection:
            connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
            connection.isolation_level = None  # we BEGIN ourselves (one snapshot)
            return connection

        return create_engine("sqlite://", creator=connect)
    return create_engine(url, pool_size=1, max_overflow=0)


class snapshot:
    """One read-only transaction, so every pass sees the same database."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def __enter__(self) -> Connection:
        if self._engine.dialect.name == "postgresql":
            self._connection = self._engine.connect().execution_options(
                isolation_level="REPEATABLE READ", postgresql_readonly=True
            )
        else:
            self._connection = self._engine.connect()
            self._connection.exec_driver_sql("BEGIN")
        return self._connection

    def __exit__(self, *_: object) -> None:
        if self._engine.dialect.name != "postgresql":
            self._connection.exec_driver_sql("ROLLBACK")
        self._connection.close()


def stream(connection: Connection, query: Any) -> Iterator[Row[Any]]:
    result = connection.execution_options(yield_per=BATCH).execute(query)
    yield from result


def json_object(data: Any) -> dict[str, Any] | None:
    try:
        value = json.loads(data)
    except (ValueError, TypeError):
        return None
    return value if isinstance(value, dict) else None
