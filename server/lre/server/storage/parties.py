"""Parties and their consents: the SQL behind them, records out."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session as DbSession

from lre.server.domain.identity import Consent, Party
from lre.server.storage import models
from lre.server.storage.paging import paged


def _party(row: models.Party) -> Party:
    return Party(
        id=row.id,
        kind=row.kind,
        professional=row.professional,
        email=row.email,
        given_name=row.given_name,
        family_name=row.family_name,
        company_name=row.company_name,
        postal_address=row.postal_address,
        create_time=row.create_time,
    )


def _consent(row: models.Consent) -> Consent:
    return Consent(
        id=row.id,
        recipient_id=row.recipient_id,
        sender_id=row.sender_id,
        method=row.method,
        grant_time=row.grant_time,
        withdraw_time=row.withdraw_time,
    )


class PartyRepository:
    def __init__(self, db: DbSession) -> None:
        self._db = db

    def get(self, party_id: uuid.UUID) -> Party | None:
        row = self._db.get(models.Party, party_id)
        return None if row is None else _party(row)

    def exists(self, party_id: uuid.UUID) -> bool:
        return self._db.get(models.Party, party_id) is not None

    def by_request(self, scope: str, request_id: str) -> tuple[Party, str | None] | None:
        """The party a caller's request created, and that request's fingerprint."""
        p = models.Party
        row = self._db.scalar(select(p).where(p.request_scope == scope, p.request_id == request_id))
        return None if row is None else (_party(row), row.request_hash)

    def add(self, party: Party, scope: str, request_id: str, request_hash: str) -> None:
        self._db.add(
            models.Party(
                id=party.id,
                kind=party.kind,
                professional=party.professional,
                given_name=party.given_name,
                family_name=party.family_name,
                company_name=party.company_name,
                email=party.email,
                postal_address=party.postal_address,
                create_time=party.create_time,
                request_scope=scope,
                request_id=request_id,
                request_hash=request_hash,
            )
        )
        self._db.flush()


class ConsentRepository:
    def __init__(self, db: DbSession) -> None:
        self._db = db

    def by_request(self, scope: str, request_id: str) -> tuple[Consent, str | None] | None:
        """The consent a caller's request recorded, and that request's fingerprint."""
        c = models.Consent
        row = self._db.scalar(select(c).where(c.request_scope == scope, c.request_id == request_id))
        return None if row is None else (_consent(row), row.request_hash)

    def active(self, recipient_id: uuid.UUID, sender_id: uuid.UUID) -> Consent | None:
        row = self._db.scalar(
            select(models.Consent).where(
                models.Consent.recipient_id == recipient_id,
                models.Consent.sender_id == sender_id,
                models.Consent.withdraw_time.is_(None),
            )
        )
        return None if row is None else _consent(row)

    def add(self, consent: Consent, scope: str, request_id: str, request_hash: str) -> None:
        self._db.add(
            models.Consent(
                id=consent.id,
                recipient_id=consent.recipient_id,
                sender_id=consent.sender_id,
                method=consent.method,
                grant_time=consent.grant_time,
                withdraw_time=consent.withdraw_time,
                request_scope=scope,
                request_id=request_id,
                request_hash=request_hash,
            )
        )
        self._db.flush()

    def get(self, consent_id: uuid.UUID) -> Consent | None:
        row = self._db.get(models.Consent, consent_id)
        return None if row is None else _consent(row)

    def withdraw(self, consent_id: uuid.UUID, now: dt.datetime) -> tuple[Consent, bool] | None:
        """The consent, withdrawn at ``now`` unless it already was, and whether
        this call withdrew it (the row is locked: one call does)."""
        row = self._db.get(models.Consent, consent_id, with_for_update=True)
        if row is None:
            return None
        withdrawing = row.withdraw_time is None
        if withdrawing:
            row.withdraw_time = now
        return _consent(row), withdrawing

    def page(
        self, recipient_id: uuid.UUID, page_size: int, page_token: str
    ) -> tuple[list[Consent], str]:
        query = (
            select(models.Consent)
            .where(models.Consent.recipient_id == recipient_id)
            .order_by(models.Consent.grant_time, models.Consent.id)
        )
        rows, token = paged(self._db, query, page_size, page_token)
        return [_consent(r) for r in rows], token
