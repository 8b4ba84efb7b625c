"""Rows to records and records to rows: the one mapping between the tables
and the frozen records of lre.server.domain.records. The records' fields are
named as the columns, so the mapping is by name."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, cast

from sqlalchemy import Connection, Row, Select, Table
from sqlalchemy.orm import Session as DbSession

from lre.server.storage.models import Base
from lre.server.storage.paging import next_token, page

Record = TypeVar("Record")
# What a repository runs its statements on: a session's transaction, or a
# bare connection for a read that needs no snapshot (Stores.peek, which
# spares a lookup made on every call the ORM session's cost).
Db = DbSession | Connection


def dialect_name(db: Db) -> str:
    return db.dialect.name if isinstance(db, Connection) else db.get_bind().dialect.name


def from_row(kind: type[Record], row: Row[Any] | Mapping[str, Any]) -> Record:
    """A record from a Core row of the table whose columns it names."""
    mapping = row._mapping if isinstance(row, Row) else row
    return kind(**{name: mapping[name] for name in _names(kind)})


def to_row(record: object) -> dict[str, Any]:
    return {name: getattr(record, name) for name in _names(type(record))}


_NAMES: dict[type, tuple[str, ...]] = {}


def _names(kind: type) -> tuple[str, ...]:
    names = _NAMES.get(kind)
    if names is None:
        names = _NAMES[kind] = tuple(f.name for f in dataclasses.fields(kind))
    return names


def paged_records(
    db: Db,
    query: Select[Any],
    page_size: int,
    page_token: str,
    make: Callable[[Row[Any]], Record],
) -> tuple[list[Record], str]:
    """One page of an ordered Core query, as records, and the next page's
    token. The query with its parameters is the list a token belongs to."""
    compiled = query.compile()
    scope = f"{compiled}|{sorted((k, str(v)) for k, v in compiled.params.items())}"
    size, offset = page(page_size, page_token, scope)
    rows = [make(row) for row in db.execute(query.offset(offset).limit(size))]
    return rows, next_token(offset, size, len(rows), scope)


def table(model: type[Base]) -> Table:
    """The Core table of an ORM model, for the repositories' statements."""
    return cast(Table, model.__table__)
