"""The test databases: where PostgreSQL is, what its sessions hold, what the tables hold."""

from __future__ import annotations

import os

from sqlalchemy import Engine, create_engine, func, select, text
from sqlalchemy.engine import make_url

from lre.server.storage import db, models

POSTGRES_URL = os.environ.get(
    "LRE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def idle_in_transaction(database_url: str, older_than_s: float = 0.0) -> int:
    """PostgreSQL sessions of this database idle in a transaction begun over
    ``older_than_s`` ago: what a client that stalls would hold for as long as
    it stalls. With workers running, give a second: their own transactions
    (waiting a tenth of a second for a seal) are younger."""
    url = make_url(database_url)
    engine = create_engine(url.set(database="postgres"))
    try:
        with engine.connect() as connection:
            return int(
                connection.scalar(
                    text(
                        "SELECT count(*) FROM pg_stat_activity "
                        "WHERE datname = :db AND state LIKE 'idle in transaction%' "
                        "AND xact_start <= now() - make_interval(secs => :age)"
                    ),
                    {"db": url.database, "age": older_than_s},
                )
            )
    finally:
        engine.dispose()


def rows_per_table(engine: Engine) -> dict[str, int]:
    """Rows per table; the security journal apart: a refused login or proof
    commits its journal entry and nothing else (see ``unjournaled``)."""
    entries = models.LogEntry.__table__
    with db.sessions(engine)() as session:
        counts = {
            table.name: session.scalar(select(func.count()).select_from(table)) or 0
            for table in models.Base.metadata.sorted_tables
        }
        counts["journal"] = (
            session.scalar(
                select(func.count()).select_from(entries).where(entries.c.letter_id.is_(None))
            )
            or 0
        )
    counts["log_entries"] -= counts["journal"]
    return counts


def unjournaled(rows: dict[str, int]) -> dict[str, int]:
    return {table: count for table, count in rows.items() if table != "journal"}
