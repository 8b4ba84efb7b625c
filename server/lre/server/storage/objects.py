"""Which rows name which objects of the object store, the retention set on
them, and the objects no row names (loose), waiting to be deleted."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Table, bindparam, delete, func, insert, select, update

from lre.server.storage import models
from lre.server.storage.records import Db, table

LETTERS = table(models.Letter)
MAILINGS = table(models.Mailing)
LOOSE = table(models.LooseObject)


@dataclass(frozen=True)
class Owner:
    """The row whose content an object holds: a letter, or a mailing (whose
    letters share it)."""

    id: uuid.UUID
    mailing: bool = False

    @property
    def table(self) -> str:
        return "mailings" if self.mailing else "letters"


@dataclass(frozen=True)
class Kept:
    """An object of kept content, as the rows know it."""

    owner: Owner
    key: str
    retain_until: dt.datetime | None
    digest: bytes | None


class ObjectRepository:
    def __init__(self, db: Db) -> None:
        self._db = db

    # -- loose objects -------------------------------------------------------------

    def add_loose(self, key: str, due: dt.datetime) -> None:
        self.add_loose_keys([key], due)

    def add_loose_keys(self, keys: list[str], due: dt.datetime) -> None:
        self._db.execute(insert(LOOSE), [{"object_key": k, "due_time": due} for k in keys])

    def keep(self, key: str) -> None:
        """No longer loose: a row names it (or it is deleted)."""
        self._db.execute(delete(LOOSE).where(LOOSE.c.object_key == key))

    def postpone(self, key: str, due: dt.datetime) -> None:
        self._db.execute(update(LOOSE).where(LOOSE.c.object_key == key).values(due_time=due))

    def due_loose(self, now: dt.datetime, batch: int) -> list[str]:
        return list(
            self._db.scalars(
                select(LOOSE.c.object_key)
                .where(LOOSE.c.due_time <= now)
                .order_by(LOOSE.c.due_time)
                .limit(batch)
            )
        )

    def loose_count(self) -> int:
        return int(self._db.scalar(select(func.count()).select_from(LOOSE)) or 0)

    # -- owners --------------------------------------------------------------------

    def loosen(self, rows: Table, ids: list[uuid.UUID], now: dt.datetime) -> None:
        """The objects of these owners (a purge, a move back to the database)
        become loose, due ``now``; the rows no longer name them."""
        keys = list(
            self._db.scalars(
                select(rows.c.content_object).where(
                    rows.c.id.in_(ids), rows.c.content_object.is_not(None)
                )
            )
        )
        if keys:
            self._db.execute(insert(LOOSE), [{"object_key": k, "due_time": now} for k in keys])
            self._db.execute(update(rows).where(rows.c.id.in_(ids)).values(content_object=None))

    def retained(self, owner: Owner, until: dt.datetime | None) -> None:
        """The retain-until date set on the owner's object (None: not yet)."""
        rows = MAILINGS if owner.mailing else LETTERS
        self._db.execute(
            update(rows).where(rows.c.id == owner.id).values(content_retain_until=until)
        )

    def retained_all(self, owners: list[tuple[Owner, dt.datetime]]) -> None:
        """``retained`` for many owners, one statement per table."""
        for mailing, rows in ((False, LETTERS), (True, MAILINGS)):
            values = [{"b_id": o.id, "b_until": u} for o, u in owners if o.mailing is mailing]
            if values:
                self._db.execute(
                    update(rows)
                    .where(rows.c.id == bindparam("b_id"))
                    .values(content_retain_until=bindparam("b_until")),
                    values,
                )

    def unretained(
        self, batch: int, before: dt.datetime | None = None
    ) -> list[tuple[Owner, str, dt.datetime]]:
        """Objects of kept content whose retention is not set yet: (owner, key,
        deposit time); deposited before ``before`` when given."""
        found: list[tuple[Owner, str, dt.datetime]] = []
        for mailing, rows in ((False, LETTERS), (True, MAILINGS)):
            where: list[ColumnElement[bool]] = [
                rows.c.content_object.is_not(None),
                rows.c.content_retain_until.is_(None),
                rows.c.content_purge_time.is_(None),
            ]
            if before is not None:
                where.append(rows.c.deposit_time < before)
            for row in self._db.execute(
                select(rows.c.id, rows.c.content_object, rows.c.deposit_time)
                .where(*where)
                .limit(batch)
            ):
                found.append((Owner(row.id, mailing), row.content_object, row.deposit_time))
        return found[:batch]

    def kept(self, batch: int, after: str = "") -> list[Kept]:
        """Objects of content still kept, by key after ``after``, for the audit
        of the store."""
        found: list[Kept] = []
        for mailing, rows in ((False, LETTERS), (True, MAILINGS)):
            for row in self._db.execute(
                select(
                    rows.c.id,
                    rows.c.content_object,
                    rows.c.content_retain_until,
                    rows.c.content_digest,
                )
                .where(rows.c.content_object > after, rows.c.content_purge_time.is_(None))
                .order_by(rows.c.content_object)
                .limit(batch)
            ):
                found.append(
                    Kept(
                        Owner(row.id, mailing),
                        row.content_object,
                        row.content_retain_until,
                        row.content_digest,
                    )
                )
        return sorted(found, key=lambda f: f.key)[:batch]

    def mailing_held(self, mailing_id: uuid.UUID) -> bool:
        """Whether any letter of the mailing is on legal hold."""
        return (
            self._db.scalar(
                select(LETTERS.c.id)
                .where(LETTERS.c.mailing_id == mailing_id, LETTERS.c.legal_hold.is_(True))
                .limit(1)
            )
            is not None
        )

    def mailing_object(self, mailing_id: uuid.UUID) -> str | None:
        key: str | None = self._db.scalar(
            select(MAILINGS.c.content_object).where(MAILINGS.c.id == mailing_id)
        )
        return key

    # -- moving content between the database and the object store ---------------------

    def owners(
        self, in_objects: bool, mailing: bool, batch: int, after: uuid.UUID | None
    ) -> list[Owner]:
        """Letters (or mailings) whose content is still kept, in the object
        store or in the database's rows, by id after ``after``; not the
        letters of a mailing, which read the mailing's."""
        rows = MAILINGS if mailing else LETTERS
        where: list[ColumnElement[bool]] = [
            rows.c.wrapped_key.is_not(None),
            rows.c.content_purge_time.is_(None),
            rows.c.content_object.is_not(None) if in_objects else rows.c.content_object.is_(None),
        ]
        if not mailing:
            where.append(rows.c.mailing_id.is_(None))
        if after is not None:
            where.append(rows.c.id > after)
        ids = self._db.scalars(select(rows.c.id).where(*where).order_by(rows.c.id).limit(batch))
        return [Owner(i, mailing) for i in ids]

    def lock_owner(self, owner: Owner) -> tuple[str | None, dt.datetime, dt.datetime | None] | None:
        """(object key, deposit time, retain-until) of a content still kept, row
        locked; None when it was purged meanwhile."""
        rows = MAILINGS if owner.mailing else LETTERS
        row = self._db.execute(
            select(rows.c.content_object, rows.c.deposit_time, rows.c.content_retain_until)
            .where(rows.c.id == owner.id, rows.c.content_purge_time.is_(None))
            .with_for_update()
        ).one_or_none()
        return None if row is None else (row[0], row[1], row[2])

    def name_object(self, owner: Owner, key: str | None, digest: bytes | None) -> None:
        """The owner's content is now in ``key``, of SHA-256 ``digest`` (None:
        in the database's rows)."""
        rows = MAILINGS if owner.mailing else LETTERS
        self._db.execute(
            update(rows)
            .where(rows.c.id == owner.id)
            .values(content_object=key, content_retain_until=None, content_digest=digest)
        )
