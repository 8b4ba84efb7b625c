"""Parties and their consents: the SQL behind them, records out."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Iterable

from sqlalchemy import ColumnElement, exists, insert, select, update

from lre.server.domain.corrections import NameCorrection, Names
from lre.server.domain.identity import Consent, Party
from lre.server.storage import models
from lre.server.storage.records import Db, from_row, paged_records, table, to_row

PARTIES = table(models.Party)
CORRECTIONS = table(models.PartyCorrection)
CONSENTS = table(models.Consent)


class PartyRepository:
    def __init__(self, db: Db) -> None:
        self._db = db

    def get(self, party_id: uuid.UUID) -> Party | None:
        row = self._db.execute(select(PARTIES).where(PARTIES.c.id == party_id)).one_or_none()
        return None if row is None else from_row(Party, row)

    def lock(self, party_id: uuid.UUID) -> Party | None:
        """The party, its row locked until the caller's transaction ends."""
        row = self._db.execute(
            select(PARTIES).where(PARTIES.c.id == party_id).with_for_update()
        ).one_or_none()
        return None if row is None else from_row(Party, row)

    def set_professional(self, party: Party) -> None:
        self._db.execute(
            update(PARTIES)
            .where(PARTIES.c.id == party.id)
            .values(professional=party.professional, professional_basis=party.professional_basis)
        )

    def correct(self, correction: NameCorrection, names: Names) -> None:
        """The party's names as corrected, and the correction that says so."""
        self._db.execute(
            update(PARTIES)
            .where(PARTIES.c.id == correction.party_id)
            .values(
                given_name=names.given_name,
                family_name=names.family_name,
                company_name=names.company_name,
            )
        )
        self._db.execute(insert(CORRECTIONS), [to_row(correction)])

    def corrections(self, party_id: uuid.UUID) -> list[NameCorrection]:
        """The party's corrections, oldest first."""
        rows = self._db.execute(
            select(CORRECTIONS)
            .where(CORRECTIONS.c.party_id == party_id)
            .order_by(CORRECTIONS.c.correct_time, CORRECTIONS.c.id)
        )
        return [from_row(NameCorrection, row) for row in rows]

    def exists(self, party_id: uuid.UUID, *, erased: bool = True) -> bool:
        """Whether the party exists; ``erased=False``: and its personal data
        was not erased (nothing new may be recorded of such a party)."""
        where = [PARTIES.c.id == party_id]
        if not erased:
            where.append(PARTIES.c.erase_time.is_(None))
        return bool(self._db.scalar(select(exists().where(*where))))

    def by_request(self, scope: str, request_id: str) -> tuple[Party, str | None] | None:
        """The party a caller's request created, and that request's fingerprint."""
        row = self._db.execute(
            select(PARTIES).where(
                PARTIES.c.request_scope == scope, PARTIES.c.request_id == request_id
            )
        ).one_or_none()
        return None if row is None else (from_row(Party, row), row.request_hash)

    def add(self, party: Party, scope: str, request_id: str, request_hash: str) -> None:
        self._db.execute(
            insert(PARTIES),
            [
                to_row(party)
                | {"request_scope": scope, "request_id": request_id, "request_hash": request_hash}
            ],
        )


def _active(sender_id: uuid.UUID, recipients: Iterable[uuid.UUID]) -> ColumnElement[bool]:
    """The consent rule's one condition: granted by the recipient to this
    sender and not withdrawn (CPCE L100)."""
    return (
        (CONSENTS.c.sender_id == sender_id)
        & CONSENTS.c.recipient_id.in_(set(recipients))
        & CONSENTS.c.withdraw_time.is_(None)
    )


class ConsentRepository:
    def __init__(self, db: Db) -> None:
        self._db = db

    def by_request(self, scope: str, request_id: str) -> tuple[Consent, str | None] | None:
        """The consent a caller's request recorded, and that request's fingerprint."""
        row = self._db.execute(
            select(CONSENTS).where(
                CONSENTS.c.request_scope == scope, CONSENTS.c.request_id == request_id
            )
        ).one_or_none()
        return None if row is None else (from_row(Consent, row), row.request_hash)

    def consenting(self, sender_id: uuid.UUID, recipients: Iterable[uuid.UUID]) -> set[uuid.UUID]:
        """Which of ``recipients`` consent to this sender's letters; one query
        (a deposit asks for one recipient, a mailing for all of its own)."""
        return set(
            self._db.scalars(select(CONSENTS.c.recipient_id).where(_active(sender_id, recipients)))
        )

    def active(self, recipient_id: uuid.UUID, sender_id: uuid.UUID) -> Consent | None:
        """The recipient's consent to this sender in force, if any."""
        row = self._db.execute(
            select(CONSENTS).where(_active(sender_id, [recipient_id])).limit(1)
        ).one_or_none()
        return None if row is None else from_row(Consent, row)

    def add(self, consent: Consent, scope: str, request_id: str, request_hash: str) -> None:
        self._db.execute(
            insert(CONSENTS),
            [
                to_row(consent)
                | {"request_scope": scope, "request_id": request_id, "request_hash": request_hash}
            ],
        )

    def get(self, consent_id: uuid.UUID) -> Consent | None:
        row = self._db.execute(select(CONSENTS).where(CONSENTS.c.id == consent_id)).one_or_none()
        return None if row is None else from_row(Consent, row)

    def withdraw(self, consent_id: uuid.UUID, now: dt.datetime) -> tuple[Consent, bool] | None:
        """The consent, withdrawn at ``now`` unless it already was, and whether
        this call withdrew it (the row is locked: one call does)."""
        row = self._db.execute(
            select(CONSENTS).where(CONSENTS.c.id == consent_id).with_for_update()
        ).one_or_none()
        if row is None:
            return None
        consent = from_row(Consent, row)
        if consent.withdraw_time is not None:
            return consent, False
        self._db.execute(
            update(CONSENTS).where(CONSENTS.c.id == consent_id).values(withdraw_time=now)
        )
        return dataclasses.replace(consent, withdraw_time=now), True

    def page(
        self, recipient_id: uuid.UUID, page_size: int, page_token: str
    ) -> tuple[list[Consent], str]:
        query = (
            select(CONSENTS)
            .where(CONSENTS.c.recipient_id == recipient_id)
            .order_by(CONSENTS.c.grant_time, CONSENTS.c.id)
        )
        return paged_records(
            self._db, query, page_size, page_token, lambda row: from_row(Consent, row)
        )
