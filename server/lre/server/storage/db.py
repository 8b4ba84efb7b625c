"""Engines, sessions and migrations."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).parent / "migrations"
logger = logging.getLogger("lre.server")


def make_engine(url: str, **kwargs: Any) -> Engine:
    """``hide_parameters``: a statement's values (names, e-mail and postal
    addresses) stay out of exception messages, hence out of logged tracebacks."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30}, hide_parameters=True, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(connection: Any, _record: Any) -> None:
            cursor = connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.close()
            # We say when transactions begin (below), not the driver.
            connection.isolation_level = None

        @event.listens_for(engine, "begin")
        def _begin_immediate(connection: Any) -> None:
            # SQLite has no row locks (no SELECT ... FOR UPDATE SKIP LOCKED):
            # taking the write lock when a transaction begins serialises writers,
            # so two workers never act on the same row from stale reads.
            connection.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    # No pool_pre_ping: it costs a round trip on every checkout. A connection
    # PostgreSQL dropped fails its one request (UNAVAILABLE) and SQLAlchemy
    # invalidates the pool, so the next request reconnects.
    return create_engine(url, pool_size=16, max_overflow=16, hide_parameters=True, **kwargs)


def sessions(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def engine_of(sessionmaker_: sessionmaker[Session]) -> Engine:
    bind = sessionmaker_.kw["bind"]
    assert isinstance(bind, Engine)
    return bind


def reader(engine: Engine) -> Connection:
    """A connection for a single read that needs no transaction (a session
    lookup on every call): on PostgreSQL in autocommit, which spares the
    BEGIN and ROLLBACK round trips. SQLite keeps its own transactions (its
    driver's autocommit would undo the BEGIN IMMEDIATE discipline above)."""
    connection = engine.connect()
    if engine.dialect.name == "postgresql":
        connection.execution_options(isolation_level="AUTOCOMMIT")
    return connection


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def schema_problem(engine: Engine) -> str | None:
    """Why this code cannot use the database's schema yet, or None.

    A schema older than the code (or none: a new install whose migration has
    not run) is a problem; a newer one, from a rolling upgrade whose
    migration ran before this replica was replaced, is not: migrations only
    add what older code ignores."""
    script = ScriptDirectory.from_config(alembic_config(engine))
    with engine.connect() as connection:
        current = MigrationContext.configure(connection).get_current_heads()
    needed = script.get_current_head()
    if not current:
        return f"no schema: run `lre-server migrate` (the code needs revision {needed})"
    known = {revision.revision for revision in script.walk_revisions()}
    if any(revision not in known for revision in current):
        return None  # newer than this code
    if needed not in current:
        return (
            f"schema at revision {', '.join(current)}, the code needs {needed}: "
            "run `lre-server migrate`"
        )
    return None


class SchemaGate:
    """Whether the schema is ready for this code, checked until it is (a
    schema only moves forward, so once ready it stays so); the reason it is
    not is logged once per reason, not once per check."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._ready = False
        self._said: str | None = None
        self._lock = threading.Lock()

    def ready(self) -> bool:
        """False while the schema is behind; raises SQLAlchemyError when the
        database cannot be reached."""
        if self._ready:
            return True
        with self._lock:
            if not self._ready:
                problem = schema_problem(self._engine)
                if problem is None:
                    self._ready = True
                elif problem != self._said:
                    logger.error("database schema not ready", extra={"reason": problem})
                    self._said = problem
            return self._ready


# pg_advisory_lock key of `lre-server migrate` (beside the sequencer's 0x4C52_4501).
MIGRATION_LOCK = 0x4C52_4502


def migrate(engine: Engine, revision: str = "head") -> None:
    """Brings the schema to ``revision``; a database already there is left alone.

    Migrations are serialised, so that a Job and an init container (or two
    hosts) started together do not race: the second waits for the first, then
    finds the schema at ``revision`` and does nothing."""
    with _migration_lock(engine):
        command.upgrade(alembic_config(engine), revision)


@contextlib.contextmanager
def _migration_lock(engine: Engine) -> Iterator[None]:
    if engine.dialect.name == "postgresql":
        # A session-level lock on a connection of its own, held while Alembic
        # migrates on others; PostgreSQL releases it if this process dies.
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK})
            try:
                yield
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK})
        return
    if engine.dialect.name == "sqlite" and engine.url.database:
        # SQLite serves one host: a file lock beside the database is enough.
        database = Path(engine.url.database)
        database.parent.mkdir(parents=True, exist_ok=True)
        with open(f"{database}.migrate-lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield
        return
    yield  # an in-memory database has no second migrator


def ping(engine: Engine) -> None:
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))
