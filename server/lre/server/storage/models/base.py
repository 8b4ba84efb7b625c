"""The declarative base, its naming convention and the column types every table uses."""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from typing import Any, ClassVar

from sqlalchemy import (
    DateTime,
    Enum,
    MetaData,
    String,
    TypeDecorator,
    Uuid,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware UTC datetimes on every database (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: pass an aware UTC datetime")
        return value.astimezone(dt.UTC)

    def process_result_value(
        self, value: dt.datetime | None, dialect: Dialect
    ) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def db_enum(kind: type[enum.Enum], name: str) -> Enum:
    """Native enum on PostgreSQL, CHECK constraint elsewhere; stores the values
    (the lower-case names for integer enums)."""
    return Enum(
        kind,
        name=name,
        values_callable=lambda members: [
            m.name.lower() if isinstance(m.value, int) else m.value for m in members
        ],
        create_constraint=True,
        validate_strings=True,
    )


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {dt.datetime: UtcDateTime(), uuid.UUID: Uuid()}


def column_length(table: str, column: str) -> int:
    """The most characters a String column holds (the API's edge checks use it)."""
    kind = Base.metadata.tables[table].columns[column].type
    if not isinstance(kind, String) or kind.length is None:
        raise LookupError(f"{table}.{column} is not a bounded string column")
    return kind.length
