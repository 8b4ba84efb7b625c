"""Identity records, proofing challenges and spent eID nonces: the SQL behind them."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session as DbSession

from lre.server.domain.identity import AssuranceLevel, IdentityRecord, ProofingChallenge
from lre.server.storage import models
from lre.server.storage.paging import paged


def _record(row: models.IdentityRecord) -> IdentityRecord:
    return IdentityRecord(
        id=row.id,
        party_id=row.party_id,
        method=row.method,
        level=row.level,
        proof_time=row.proof_time,
        expire_time=row.expire_time,
        evidence_summary=row.evidence_summary,
        details=row.details,
    )


class ProofingRepository:
    def __init__(self, db: DbSession) -> None:
        self._db = db

    def add_record(self, record: IdentityRecord) -> None:
        self._db.add(
            models.IdentityRecord(
                id=record.id,
                party_id=record.party_id,
                method=record.method,
                level=record.level,
                proof_time=record.proof_time,
                expire_time=record.expire_time,
                evidence_summary=record.evidence_summary,
                details=record.details,
            )
        )
        self._db.flush()

    def level(self, party_id: uuid.UUID, now: dt.datetime) -> AssuranceLevel | None:
        """The highest level among the party's identity records still valid at ``now``."""
        r = models.IdentityRecord
        levels = [
            level
            for level, expire_time in self._db.execute(
                select(r.level, r.expire_time).where(r.party_id == party_id)
            )
            if expire_time is None or expire_time > now
        ]
        return max(levels) if levels else None

    def page(
        self, party_id: uuid.UUID, page_size: int, page_token: str
    ) -> tuple[list[IdentityRecord], str]:
        query = (
            select(models.IdentityRecord)
            .where(models.IdentityRecord.party_id == party_id)
            .order_by(models.IdentityRecord.proof_time, models.IdentityRecord.id)
        )
        rows, token = paged(self._db, query, page_size, page_token)
        return [_record(r) for r in rows], token

    def add_challenge(self, challenge: ProofingChallenge) -> None:
        self._db.add(
            models.ProofingChallenge(
                id=challenge.id,
                party_id=challenge.party_id,
                challenge=challenge.challenge,
                expire_time=challenge.expire_time,
                use_time=challenge.use_time,
            )
        )

    def use_challenge(self, challenge_id: uuid.UUID, now: dt.datetime) -> ProofingChallenge | None:
        """The challenge as it was, now marked used (one attempt each, whatever its result)."""
        row = self._db.get(models.ProofingChallenge, challenge_id, with_for_update=True)
        if row is None:
            return None
        before = ProofingChallenge(
            row.id, row.party_id, row.challenge, row.expire_time, row.use_time
        )
        row.use_time = now
        return before

    def spend_nonce(self, issuer: str, nonce: str, now: dt.datetime) -> None:
        """Raises IntegrityError when the nonce was spent before."""
        self._db.add(models.UsedNonce(issuer=issuer, nonce=nonce, use_time=now))
        self._db.flush()
