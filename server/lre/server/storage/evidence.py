"""Sealed evidence, and the sender's charges."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable

from sqlalchemy import bindparam, func, insert, select

from lre.server.domain.letters import EvidenceEvent
from lre.server.domain.records import ChargeRecord, EvidenceRecord, EvidenceWithProof
from lre.server.storage import models
from lre.server.storage.archive import latest_pdf_column, latest_seal_column
from lre.server.storage.records import Db, from_row, paged_records, table, to_row

EVIDENCE = table(models.Evidence)
PROOFS = table(models.EvidenceProof)
CHARGES = table(models.Charge)


# Asked for every evidence and every proof: built once.
_INSERT = insert(EVIDENCE)
_INSERT_PROOF = insert(PROOFS)
_HAS = select(EVIDENCE.c.id).where(
    EVIDENCE.c.letter_id == bindparam("letter_id"), EVIDENCE.c.event == bindparam("event")
)
_HAS_PROOF = select(PROOFS.c.evidence_id).where(PROOFS.c.evidence_id == bindparam("id"))
_WITH_PROOF = (
    select(
        EVIDENCE,
        func.coalesce(latest_pdf_column(), PROOFS.c.pdf).label("proof_pdf"),
        latest_seal_column().label("archive_seal"),
    )
    .outerjoin(PROOFS, PROOFS.c.evidence_id == EVIDENCE.c.id)
    .where(EVIDENCE.c.id == bindparam("id"))
)


class EvidenceRepository:
    def __init__(self, db: Db) -> None:
        self._db = db

    def add(self, evidence: Iterable[EvidenceRecord]) -> None:
        rows = [to_row(e) for e in evidence]
        if rows:
            self._db.execute(_INSERT, rows)

    def get(self, evidence_id: uuid.UUID) -> EvidenceWithProof | None:
        """The evidence with its stored PDF proof, if one is stored: the
        latest renewal's (archive timestamps), or the first."""
        row = self._db.execute(_WITH_PROOF, {"id": evidence_id}).one_or_none()
        return None if row is None else from_row(EvidenceWithProof, row)

    def of_letter(self, letter_id: uuid.UUID) -> list[EvidenceRecord]:
        """In the order the events happened."""
        rows = self._db.execute(
            select(EVIDENCE)
            .where(EVIDENCE.c.letter_id == letter_id)
            .order_by(EVIDENCE.c.event_time, EVIDENCE.c.id)
        )
        return [from_row(EvidenceRecord, row) for row in rows]

    def submission(self, letter_id: uuid.UUID) -> bytes | None:
        """The document of the letter's SubmissionAcceptance or SubmissionRejection."""
        document: bytes | None = self._db.scalar(
            select(EVIDENCE.c.document).where(
                EVIDENCE.c.letter_id == letter_id,
                EVIDENCE.c.event.in_(
                    [EvidenceEvent.SUBMISSION_ACCEPTANCE, EvidenceEvent.SUBMISSION_REJECTION]
                ),
            )
        )
        return document

    def has(self, letter_id: uuid.UUID, event: EvidenceEvent) -> bool:
        return self._db.scalar(_HAS, {"letter_id": letter_id, "event": event}) is not None

    def has_proof(self, evidence_id: uuid.UUID) -> bool:
        return self._db.scalar(_HAS_PROOF, {"id": evidence_id}) is not None

    def add_proof(self, evidence_id: uuid.UUID, pdf: bytes, now: dt.datetime) -> None:
        """Stores the proof; WriteConflict (from the unit of work) if one is stored
        already (made meanwhile)."""
        self._db.execute(
            _INSERT_PROOF, [{"evidence_id": evidence_id, "pdf": pdf, "create_time": now}]
        )


class ChargeRepository:
    def __init__(self, db: Db) -> None:
        self._db = db

    def add(self, charges: Iterable[ChargeRecord]) -> None:
        rows = [to_row(c) for c in charges]
        if rows:
            self._db.execute(insert(CHARGES), rows)

    def page_for(
        self,
        sender_id: uuid.UUID,
        start: dt.datetime | None,
        end: dt.datetime | None,
        page_size: int,
        page_token: str,
    ) -> tuple[list[ChargeRecord], str]:
        """Oldest first, for invoicing."""
        query = select(CHARGES).where(CHARGES.c.sender_id == sender_id)
        if start is not None:
            query = query.where(CHARGES.c.create_time >= start)
        if end is not None:
            query = query.where(CHARGES.c.create_time < end)
        query = query.order_by(CHARGES.c.create_time, CHARGES.c.id)
        return paged_records(
            self._db, query, page_size, page_token, lambda row: from_row(ChargeRecord, row)
        )
