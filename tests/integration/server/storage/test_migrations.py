"""Migrating an empty database to head yields exactly the models' schema."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, Enum, inspect, text

from lre.server.storage import db
from lre.server.storage.models import Base


def _model_enums() -> dict[tuple[str, str], list[str]]:
    found = {}
    for table in Base.metadata.tables.values():
        for column in table.columns:
            if isinstance(column.type, Enum):
                found[(table.name, column.name)] = list(column.type.enums)
    return found


def _assert_matches_models(engine: Engine) -> None:
    db.migrate(engine)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
    assert diff == [], f"migrations and models differ: {diff}"
    tables = set(inspect(engine).get_table_names()) - {"alembic_version"}
    assert tables == set(Base.metadata.tables)


def test_sqlite_migrates_to_the_models(tmp_path: Path) -> None:
    engine = db.make_engine(f"sqlite:///{tmp_path / 'lre.db'}")
    _assert_matches_models(engine)
    with engine.connect() as connection:
        ddl: dict[str, str] = dict(
            connection.execute(text("SELECT name, sql FROM sqlite_master WHERE type='table'")).all()
        )
    for (table, column), labels in _model_enums().items():
        check = re.search(rf"CHECK \({column} IN \(([^)]*)\)\)", ddl[table])
        assert check, f"{table}.{column} has no CHECK constraint"
        assert [v.strip().strip("'") for v in check.group(1).split(",")] == labels


@pytest.mark.postgres
def test_postgres_migrates_to_the_models(postgres_database: str) -> None:
    engine = db.make_engine(postgres_database)
    try:
        _assert_matches_models(engine)
        with engine.connect() as connection:
            for (table, column), labels in _model_enums().items():
                udt = connection.execute(
                    text(
                        "SELECT udt_name FROM information_schema.columns "
                        "WHERE table_name=:t AND column_name=:c"
                    ),
                    {"t": table, "c": column},
                ).scalar_one()
                in_db = (
                    connection.execute(
                        text(
                            "SELECT e.enumlabel FROM pg_enum e "
                            "JOIN pg_type t ON t.oid = e.enumtypid "
                            "WHERE t.typname = :n ORDER BY e.enumsortorder"
                        ),
                        {"n": udt},
                    )
                    .scalars()
                    .all()
                )
                assert in_db == labels, f"{table}.{column}"
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_postgres_downgrade_removes_everything(postgres_database: str) -> None:
    from alembic import command

    engine = db.make_engine(postgres_database)
    try:
        db.migrate(engine)
        command.downgrade(db.alembic_config(engine), "base")
        assert set(inspect(engine).get_table_names()) == {"alembic_version"}
        with engine.connect() as connection:
            assert (
                connection.execute(
                    text("SELECT count(*) FROM pg_type WHERE typtype = 'e'")
                ).scalar_one()
                == 0
            )
        db.migrate(engine)  # and up again
    finally:
        engine.dispose()


def test_migrate_twice_is_a_no_op(tmp_path: Path) -> None:
    engine = db.make_engine(f"sqlite:///{tmp_path / 'lre.db'}")
    db.migrate(engine)
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO parties (id, kind, professional, email, create_time) "
                "VALUES ('00000000000000000000000000000001', 'legal_person', 1, "
                "'a@example.org', '2026-01-01')"
            )
        )
    db.migrate(engine)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM parties")).scalar_one() == 1
