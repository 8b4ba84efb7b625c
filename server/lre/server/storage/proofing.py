"""Identity records, proofing challenges and spent eID nonces: the SQL behind them."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import insert, select, update

from lre.server.domain.identity import AssuranceLevel, IdentityRecord, ProofingChallenge
from lre.server.storage import models
from lre.server.storage.records import Db, from_row, paged_records, table, to_row

RECORDS = table(models.IdentityRecord)
CHALLENGES = table(models.ProofingChallenge)
NONCES = table(models.UsedNonce)


class ProofingRepository:
    def __init__(self, db: Db) -> None:
        self._db = db

    def add_record(self, record: IdentityRecord) -> None:
        self._db.execute(insert(RECORDS), [to_row(record)])

    def level(self, party_id: uuid.UUID, now: dt.datetime) -> AssuranceLevel | None:
        """The highest level among the party's identity records still valid at
        ``now``; an erased record proofs nothing (its evidence is gone)."""
        levels = [
            level
            for level, expire_time in self._db.execute(
                select(RECORDS.c.level, RECORDS.c.expire_time).where(
                    RECORDS.c.party_id == party_id, RECORDS.c.erase_time.is_(None)
                )
            )
            if expire_time is None or expire_time > now
        ]
        return max(levels) if levels else None

    def highest_ever(self, party_id: uuid.UUID) -> AssuranceLevel | None:
        """The highest level the party was ever proofed at, expired or not."""
        levels = list(
            self._db.scalars(select(RECORDS.c.level).where(RECORDS.c.party_id == party_id))
        )
        return max(levels) if levels else None

    def page(
        self, party_id: uuid.UUID, page_size: int, page_token: str
    ) -> tuple[list[IdentityRecord], str]:
        query = (
            select(RECORDS)
            .where(RECORDS.c.party_id == party_id)
            .order_by(RECORDS.c.proof_time, RECORDS.c.id)
        )
        return paged_records(
            self._db, query, page_size, page_token, lambda row: from_row(IdentityRecord, row)
        )

    def add_challenge(self, challenge: ProofingChallenge) -> None:
        self._db.execute(insert(CHALLENGES), [to_row(challenge)])

    def use_challenge(self, challenge_id: uuid.UUID, now: dt.datetime) -> ProofingChallenge | None:
        """The challenge as it was, now marked used (one attempt each, whatever its result)."""
        row = self._db.execute(
            select(CHALLENGES).where(CHALLENGES.c.id == challenge_id).with_for_update()
        ).one_or_none()
        if row is None:
            return None
        self._db.execute(
            update(CHALLENGES).where(CHALLENGES.c.id == challenge_id).values(use_time=now)
        )
        return from_row(ProofingChallenge, row)

    def spend_nonce(self, issuer: str, nonce: str, now: dt.datetime) -> None:
        """WriteConflict (from the unit of work) when the nonce was spent before."""
        self._db.execute(insert(NONCES), [{"issuer": issuer, "nonce": nonce, "use_time": now}])
