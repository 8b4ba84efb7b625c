"""Archive timestamps: each evidence's renewed seal and PDF proof (a new
version each time) and until when its timestamps prove it."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from sqlalchemy import ScalarSelect, and_, exists, func, insert, or_, select, update

from lre.server.storage import models
from lre.server.storage.records import Db, table

EVIDENCE = table(models.Evidence)
PROOFS = table(models.EvidenceProof)
VERSIONS = table(models.EvidenceArchiveVersion)
COVERAGE = table(models.EvidenceArchiveCoverage)


@dataclass(frozen=True)
class Archived:
    """An evidence's latest seal and PDF proof: renewed, or as first made."""

    evidence_id: uuid.UUID
    seal: bytes
    pdf: bytes | None
    version: int  # 0: never renewed


class ArchiveRepository:
    def __init__(self, db: Db) -> None:
        self._db = db

    def unregistered(self, batch: int) -> list[tuple[uuid.UUID, bytes]]:
        """Evidence not looked at yet (new, or older than the renewals), by id:
        what the backfill takes, resuming wherever it stopped."""
        rows = self._db.execute(
            select(EVIDENCE.c.id, EVIDENCE.c.seal)
            .outerjoin(COVERAGE, COVERAGE.c.evidence_id == EVIDENCE.c.id)
            .where(COVERAGE.c.evidence_id.is_(None))
            .order_by(EVIDENCE.c.id)
            .limit(batch)
        )
        return [(row.id, row.seal) for row in rows]

    def register(self, covered: list[tuple[uuid.UUID, dt.datetime]], now: dt.datetime) -> None:
        if covered:
            self._db.execute(
                insert(COVERAGE),
                [
                    {
                        "evidence_id": evidence_id,
                        "covered_until": until,
                        "archive_timestamps": 0,
                        "update_time": now,
                    }
                    for evidence_id, until in covered
                ],
            )

    def due(self, before: dt.datetime, below: dt.datetime, batch: int) -> list[Archived]:
        """Evidence without an archive timestamp yet, evidence covered
        only until ``before`` or earlier (and not already until ``below``,
        what a renewal now would give), and evidence whose stored PDF proof
        was made after its last renewal, soonest first, with their latest seal
        and PDF. Not locked: two workers may renew the same evidence, and the
        second's version conflicts with the first's (``add_version``)."""
        # A PDF proof first made after the seal's last renewal is B-LT only:
        # due now, so that it gets its document timestamp at the next step.
        proof_pending = and_(
            COVERAGE.c.archive_timestamps > 0,
            exists().where(PROOFS.c.evidence_id == COVERAGE.c.evidence_id),
            ~exists().where(
                VERSIONS.c.evidence_id == COVERAGE.c.evidence_id, VERSIONS.c.pdf.is_not(None)
            ),
        )
        due = (
            select(COVERAGE.c.evidence_id)
            .where(
                or_(
                    COVERAGE.c.archive_timestamps == 0,
                    and_(COVERAGE.c.covered_until <= before, COVERAGE.c.covered_until < below),
                    proof_pending,
                )
            )
            .order_by(COVERAGE.c.covered_until)
            .limit(batch)
        )
        ids = [row.evidence_id for row in self._db.execute(due)]
        return [self.latest(evidence_id) for evidence_id in ids]

    def latest(self, evidence_id: uuid.UUID) -> Archived:
        """The latest seal, and the latest PDF: a proof first made after a
        renewal of the seal alone is renewed from the stored one."""
        row = self._db.execute(
            select(EVIDENCE.c.seal, PROOFS.c.pdf)
            .outerjoin(PROOFS, PROOFS.c.evidence_id == EVIDENCE.c.id)
            .where(EVIDENCE.c.id == evidence_id)
        ).one()
        version = self._db.execute(
            select(VERSIONS.c.version, VERSIONS.c.seal, VERSIONS.c.pdf)
            .where(VERSIONS.c.evidence_id == evidence_id)
            .order_by(VERSIONS.c.version.desc())
            .limit(1)
        ).one_or_none()
        if version is None:
            return Archived(evidence_id, row.seal, row.pdf, 0)
        return Archived(evidence_id, version.seal, version.pdf or row.pdf, version.version)

    def add_version(self, renewed: Archived, covered_until: dt.datetime, now: dt.datetime) -> None:
        """WriteConflict (from the unit of work) when that version exists."""
        self._db.execute(
            insert(VERSIONS),
            [
                {
                    "evidence_id": renewed.evidence_id,
                    "version": renewed.version,
                    "seal": renewed.seal,
                    "pdf": renewed.pdf,
                    "create_time": now,
                }
            ],
        )
        self._db.execute(
            update(COVERAGE)
            .where(COVERAGE.c.evidence_id == renewed.evidence_id)
            .values(
                covered_until=covered_until, archive_timestamps=renewed.version, update_time=now
            )
        )

    def archived_seal(self, evidence_id: uuid.UUID) -> bytes | None:
        """The latest renewed seal (CAdES B-LTA), None before the first renewal."""
        seal: bytes | None = self._db.scalar(
            select(VERSIONS.c.seal)
            .where(VERSIONS.c.evidence_id == evidence_id)
            .order_by(VERSIONS.c.version.desc())
            .limit(1)
        )
        return seal

    def summary(self) -> tuple[int, dt.datetime | None]:
        """How many evidence have never been looked at, and the earliest coverage end."""
        pending = self._db.scalar(
            select(func.count())
            .select_from(EVIDENCE.outerjoin(COVERAGE, COVERAGE.c.evidence_id == EVIDENCE.c.id))
            .where(COVERAGE.c.evidence_id.is_(None))
        )
        earliest = self._db.scalar(select(func.min(COVERAGE.c.covered_until)))
        return int(pending or 0), earliest


def latest_pdf_column() -> ScalarSelect[bytes]:
    """The latest renewed PDF of the outer query's evidence, if any."""
    return (
        select(VERSIONS.c.pdf)
        .where(and_(VERSIONS.c.evidence_id == EVIDENCE.c.id, VERSIONS.c.pdf.is_not(None)))
        .order_by(VERSIONS.c.version.desc())
        .limit(1)
        .scalar_subquery()
    )


def latest_seal_column() -> ScalarSelect[bytes]:
    """The latest renewed seal of the outer query's evidence, if any."""
    return (
        select(VERSIONS.c.seal)
        .where(VERSIONS.c.evidence_id == EVIDENCE.c.id)
        .order_by(VERSIONS.c.version.desc())
        .limit(1)
        .scalar_subquery()
    )


def latest_version_column() -> ScalarSelect[int]:
    """The number of the latest renewal of the outer query's evidence, if any."""
    return (
        select(VERSIONS.c.version)
        .where(VERSIONS.c.evidence_id == EVIDENCE.c.id)
        .order_by(VERSIONS.c.version.desc())
        .limit(1)
        .scalar_subquery()
    )
