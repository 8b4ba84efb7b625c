"""`lre-server migrate` started twice at once (a Job and an init container,
two hosts): both succeed, the schema is migrated once, to head."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text

from lre.server.storage import db
from lre.server.storage.models import Base
from tests.support.processes import BIN


def _head() -> str:
    config = db.alembic_config(db.make_engine("sqlite://"))
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head
    return head


def _start_migrate(url: str, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [str(BIN / "lre-server"), "migrate"],
        env={"LRE_SERVER_DATABASE_URL": url, "PATH": "/usr/bin:/bin"},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )


def _migrate_twice_at_once(url: str, tmp_path: Path) -> None:
    logs = [tmp_path / "migrate-1.log", tmp_path / "migrate-2.log"]
    processes = [_start_migrate(url, log) for log in logs]
    for process, log in zip(processes, logs, strict=True):
        assert process.wait(timeout=120) == 0, log.read_text()
        assert "database schema up to date" in log.read_text()
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            versions = connection.execute(text("SELECT version_num FROM alembic_version")).all()
        assert [v for (v,) in versions] == [_head()]
        tables = set(inspect(engine).get_table_names()) - {"alembic_version"}
        assert tables == set(Base.metadata.tables)
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_two_migrations_at_once_on_postgres(postgres_database: str, tmp_path: Path) -> None:
    _migrate_twice_at_once(postgres_database, tmp_path)


def test_two_migrations_at_once_on_sqlite(tmp_path: Path) -> None:
    _migrate_twice_at_once(f"sqlite:///{tmp_path / 'lre.db'}", tmp_path)


@pytest.mark.postgres
def test_migrate_waits_for_the_advisory_lock(postgres_database: str, tmp_path: Path) -> None:
    """The lock is what serialises them: held elsewhere, migrate waits for it."""
    holder = create_engine(postgres_database, isolation_level="AUTOCOMMIT")
    log = tmp_path / "migrate.log"
    try:
        with holder.connect() as connection:
            connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": db.MIGRATION_LOCK})
            process = _start_migrate(postgres_database, log)
            time.sleep(3)
            assert process.poll() is None, log.read_text()
            assert "alembic_version" not in inspect(holder).get_table_names()
            connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": db.MIGRATION_LOCK})
            assert process.wait(timeout=120) == 0, log.read_text()
    finally:
        holder.dispose()
