"""Letters, their parts and their encrypted content chunks."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

from sqlalchemy import BindParameter, Select, bindparam, delete, func, insert, select, update

from lre.server.domain.errors import NotFound
from lre.server.domain.evidence import PartDigest, PartyDetails
from lre.server.domain.identity import NAMING_METHODS
from lre.server.domain.letters import Letter, LetterState, PartyKind
from lre.server.domain.proofing import Claimed, evidence_name
from lre.server.domain.records import LetterRecord, PartRecord
from lre.server.storage import models
from lre.server.storage.objects import ObjectRepository
from lre.server.storage.records import Db, from_row, paged_records, table, to_row

LETTERS = table(models.Letter)
PARTS = table(models.LetterPart)
CHUNKS = table(models.ContentChunk)
PARTIES = table(models.Party)
RECORDS = table(models.IdentityRecord)
CORRECTIONS = table(models.PartyCorrection)


# The statements asked several times a letter, built once: building one
# cost more CPU than the database took to answer it.
def _parties_statements() -> tuple[Select[Any], Select[Any]]:
    """What e-mails and evidence name of parties: the parties, their proofings."""
    p, r, c = PARTIES.c, RECORDS.c, CORRECTIONS.c
    ids: BindParameter[uuid.UUID] = bindparam("ids", expanding=True)
    # Each party's latest name correction, if any, read with the party
    # (corrections are rare; the deposit and every e-mail ask): proofs
    # name it, and a proofing before it matched the names it corrected.
    latest = (
        select(c.id, c.correct_time)
        .where(c.party_id == p.id)
        .order_by(c.correct_time.desc())
        .limit(1)
        .correlate(PARTIES)
    )
    parties = select(
        p.id,
        p.kind,
        p.professional,
        p.given_name,
        p.family_name,
        p.company_name,
        p.email,
        p.registration_id,
        latest.with_only_columns(c.id).scalar_subquery().label("correction_id"),
        latest.with_only_columns(c.correct_time).scalar_subquery().label("correct_time"),
    ).where(p.id.in_(ids))
    # Each party's latest proofing that matched names (a certificate or an
    # eID; a document check matches none), and only the names: a record's
    # details also hold the evidence it was made from (a certificate's chain
    # and CRLs, an eID token's claims), and records accumulate.
    latest_named = (
        select(
            r.id,
            func.row_number()
            .over(partition_by=r.party_id, order_by=(r.proof_time.desc(), r.id.desc()))
            .label("rank"),
        )
        .where(r.party_id.in_(ids), r.method.in_(NAMING_METHODS))
        .subquery()
    )
    proofings = (
        select(r.party_id, r.details["matched"].label("matched"), r.proof_time)
        .join(latest_named, latest_named.c.id == r.id)
        .where(latest_named.c.rank == 1)
    )
    return parties, proofings


_PARTIES, _PROOFINGS = _parties_statements()
_LETTER = select(LETTERS).where(LETTERS.c.id == bindparam("id"))
_LETTER_LOCKED = _LETTER.with_for_update()
_PARTS_OF = (
    select(PARTS)
    .where(PARTS.c.letter_id.in_(bindparam("ids", expanding=True)))
    .order_by(PARTS.c.letter_id, PARTS.c.part_index)
)
_SAVE_LIFECYCLE = (
    update(LETTERS)
    .where(LETTERS.c.id == bindparam("key"))
    .values(
        state=bindparam("state"),
        notification_time=bindparam("notification_time"),
        decision_time=bindparam("decision_time"),
        acceptance_deadline=bindparam("acceptance_deadline"),
    )
)


def _part(row: Any) -> PartRecord:
    return PartRecord(
        row.letter_id, row.part_index, row.filename, row.media_type, row.size_bytes, row.sha256
    )


class LetterRepository:
    """Writes are Core statements in the caller's transaction: the deposit path
    spent more CPU in the ORM's unit of work than in everything else
    (docs/performance.md)."""

    def __init__(self, db: Db) -> None:
        self._db = db

    def add(self, *letters: LetterRecord) -> None:
        """Letters, one statement (a mailing's all at once)."""
        if letters:
            self._db.execute(insert(LETTERS), [to_row(letter) for letter in letters])

    def add_parts(self, parts: Iterable[PartRecord]) -> None:
        rows = [
            {
                "letter_id": p.letter_id,
                "part_index": p.index,
                "filename": p.filename,
                "media_type": p.media_type,
                "size_bytes": p.size_bytes,
                "sha256": p.sha256,
            }
            for p in parts
        ]
        if rows:
            self._db.execute(insert(PARTS), rows)

    def get(self, letter_id: uuid.UUID) -> LetterRecord | None:
        row = self._db.execute(_LETTER, {"id": letter_id}).one_or_none()
        return None if row is None else from_row(LetterRecord, row)

    def lock(self, letter_id: uuid.UUID) -> LetterRecord:
        """The letter, locked until the caller's transaction ends."""
        row = self._db.execute(_LETTER_LOCKED, {"id": letter_id}).one_or_none()
        if row is None:
            raise NotFound("no such letter")
        return from_row(LetterRecord, row)

    def by_request(self, sender_id: uuid.UUID, request_id: str) -> LetterRecord | None:
        row = self._db.execute(
            select(LETTERS).where(
                LETTERS.c.sender_id == sender_id, LETTERS.c.request_id == request_id
            )
        ).one_or_none()
        return None if row is None else from_row(LetterRecord, row)

    def by_reference(self, reference: str) -> LetterRecord | None:
        row = self._db.execute(
            select(LETTERS).where(LETTERS.c.reference == reference)
        ).one_or_none()
        return None if row is None else from_row(LetterRecord, row)

    def save_lifecycles(self, changes: Iterable[tuple[uuid.UUID, Letter]]) -> None:
        """Writes what the state machine changed: state, times and the deadline
        of the acceptance window (none once the notification failed)."""
        rows = []
        for letter_id, letter in changes:
            window = letter.window
            open_window = window is not None and letter.state is not LetterState.NOTIFICATION_FAILED
            rows.append(
                {
                    "key": letter_id,
                    "state": letter.state,
                    "notification_time": letter.notification_time,
                    "decision_time": letter.decision_time,
                    "acceptance_deadline": window.closes_at if open_window and window else None,
                }
            )
        if rows:
            self._db.execute(_SAVE_LIFECYCLE, rows)

    def set_legal_hold(self, letter_id: uuid.UUID, hold: bool) -> None:
        self._db.execute(update(LETTERS).where(LETTERS.c.id == letter_id).values(legal_hold=hold))

    def parts(self, letter_id: uuid.UUID) -> list[PartRecord]:
        rows = self._db.execute(
            select(PARTS).where(PARTS.c.letter_id == letter_id).order_by(PARTS.c.part_index)
        )
        return [_part(row) for row in rows]

    def digests(self, letter_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[PartDigest]]:
        """The parts of several letters at once, as the evidence names them."""
        digests: dict[uuid.UUID, list[PartDigest]] = {i: [] for i in letter_ids}
        for row in self._db.execute(_PARTS_OF, {"ids": letter_ids}):
            digests[row.letter_id].append(
                PartDigest(row.filename, row.media_type, row.size_bytes, row.sha256.hex())
            )
        return digests

    def addressed_to(self, party_id: uuid.UUID) -> tuple[set[uuid.UUID], bool]:
        """Who sent letters to the party, and whether any of them was notified."""
        rows = self._db.execute(
            select(LETTERS.c.sender_id, LETTERS.c.notification_time).where(
                LETTERS.c.recipient_id == party_id
            )
        ).all()
        return {row.sender_id for row in rows}, any(row.notification_time for row in rows)

    def in_window(self, party_id: uuid.UUID, now: dt.datetime) -> bool:
        """Whether a letter to the party awaits its decision (notified, the
        acceptance window still open)."""
        found = self._db.execute(
            select(LETTERS.c.id)
            .where(
                LETTERS.c.recipient_id == party_id,
                LETTERS.c.state == LetterState.NOTIFIED,
                LETTERS.c.acceptance_deadline > now,
            )
            .limit(1)
        ).first()
        return found is not None

    def professionals(self, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, bool]:
        """Of the parties that exist (an erased one no longer does: nothing
        is left to name it in evidence), whether each is a professional."""
        rows = self._db.execute(
            select(PARTIES.c.id, PARTIES.c.professional).where(
                PARTIES.c.id.in_(set(ids)), PARTIES.c.erase_time.is_(None)
            )
        )
        return {row.id: row.professional for row in rows}

    def parties(self, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, tuple[PartyDetails, bool]]:
        """What evidence and e-mails name of each party (R53-2: name or company
        name, e-mail address), and whether it is a professional. The name is
        the one the party's latest proofing matched, where it was proofed
        (evidence_name)."""
        wanted = {"ids": list(set(ids))}
        rows = self._db.execute(_PARTIES, wanted).all()
        corrected = {
            row.id: (f"parties/{row.id}/corrections/{row.correction_id}", row.correct_time)
            for row in rows
            if row.correction_id is not None
        }
        matched: dict[uuid.UUID, dict[str, str]] = {}
        for record in self._db.execute(_PROOFINGS, wanted):
            correction = corrected.get(record.party_id)
            if correction is not None and record.proof_time < correction[1]:
                continue  # it matched the names since corrected
            if isinstance(record.matched, dict) and record.matched:  # erased: none
                matched[record.party_id] = record.matched
        found = {}
        for row in rows:
            claimed = Claimed(
                row.kind is not PartyKind.LEGAL_PERSON,
                row.given_name,
                row.family_name,
                row.company_name,
            )
            name = evidence_name(claimed, matched.get(row.id))
            found[row.id] = (
                PartyDetails(
                    name,
                    row.email,
                    str(row.id),
                    row.registration_id,
                    correction=corrected.get(row.id),
                ),
                row.professional,
            )
        return found

    # -- the workers' sweeps ---------------------------------------------------

    def lock_expired_windows(self, now: dt.datetime, batch: int) -> list[LetterRecord]:
        """Notified letters whose window has closed, oldest deadline first;
        rows another sweeper holds are skipped."""
        rows = self._db.execute(
            select(LETTERS)
            .where(LETTERS.c.state == LetterState.NOTIFIED, LETTERS.c.acceptance_deadline <= now)
            .order_by(LETTERS.c.acceptance_deadline)
            .limit(batch)
            .with_for_update(skip_locked=True)
        )
        return [from_row(LetterRecord, row) for row in rows]

    def oldest_expired_window(self, now: dt.datetime) -> dt.datetime | None:
        oldest: dt.datetime | None = self._db.scalar(
            select(func.min(LETTERS.c.acceptance_deadline)).where(
                LETTERS.c.state == LetterState.NOTIFIED, LETTERS.c.acceptance_deadline <= now
            )
        )
        return oldest

    def count_by_state(self) -> dict[LetterState, int]:
        counts = dict.fromkeys(LetterState, 0)
        for state, count in self._db.execute(
            select(LETTERS.c.state, func.count()).group_by(LETTERS.c.state)
        ):
            counts[state] = count
        return counts

    def lock_past_retention(self, deposited_before: dt.datetime, batch: int) -> list[uuid.UUID]:
        """Final letters deposited before the date whose content is still kept
        and not on legal hold."""
        return list(
            self._db.scalars(
                select(LETTERS.c.id)
                .where(
                    LETTERS.c.state.in_([s for s in LetterState if s.final]),
                    LETTERS.c.deposit_time <= deposited_before,
                    LETTERS.c.legal_hold.is_(False),
                    # A refused deposit never had content to delete.
                    LETTERS.c.wrapped_key.is_not(None),
                    LETTERS.c.content_purge_time.is_(None),
                )
                .limit(batch)
                .with_for_update(skip_locked=True)
            )
        )

    def purge_content(self, letter_ids: list[uuid.UUID], now: dt.datetime) -> None:
        """Deletes the chunks (or the object, see ObjectRepository.loosen) and
        the wrapped key, without which no copy of the content can be read."""
        if not letter_ids:
            return
        # An object of the object store goes with its rows: loose, its
        # deletion (every version) left to the content objects worker.
        ObjectRepository(self._db).loosen(LETTERS, letter_ids, now)
        self._db.execute(delete(CHUNKS).where(CHUNKS.c.letter_id.in_(letter_ids)))
        self._db.execute(
            update(LETTERS)
            .where(LETTERS.c.id.in_(letter_ids))
            .values(wrapped_key=None, content_purge_time=now)
        )

    # -- reading ---------------------------------------------------------------

    def page_for(
        self,
        party_id: uuid.UUID,
        as_sender: bool,
        state: LetterState | None,
        page_size: int,
        page_token: str,
    ) -> tuple[list[LetterRecord], str]:
        """A party's letters, as sender or recipient, newest first; a recipient
        never sees refused deposits."""
        column = LETTERS.c.sender_id if as_sender else LETTERS.c.recipient_id
        query = select(LETTERS).where(column == party_id)
        if not as_sender:
            query = query.where(LETTERS.c.state != LetterState.REJECTED)
        if state is not None:
            query = query.where(LETTERS.c.state == state)
        query = query.order_by(LETTERS.c.deposit_time.desc(), LETTERS.c.id)
        return paged_records(
            self._db, query, page_size, page_token, lambda row: from_row(LetterRecord, row)
        )


class ContentRepository:
    """Encrypted chunks, written in batches and read back in order."""

    def __init__(self, db: Db) -> None:
        self._db = db

    def add(self, chunks: list[dict[str, Any]]) -> None:
        """Rows of letter_id, part_index, sequence and ciphertext."""
        if chunks:
            self._db.execute(insert(CHUNKS), chunks)

    def delete(self, letter_id: uuid.UUID) -> None:
        """Every chunk of the content (moved to the object store)."""
        self._db.execute(delete(CHUNKS).where(CHUNKS.c.letter_id == letter_id))

    def read(self, letter_id: uuid.UUID) -> Iterator[tuple[int, int, bytes]]:
        """(part, sequence, ciphertext), in order, at most 8 chunks in memory."""
        rows = self._db.execute(
            select(CHUNKS.c.part_index, CHUNKS.c.sequence, CHUNKS.c.ciphertext)
            .where(CHUNKS.c.letter_id == letter_id)
            .order_by(CHUNKS.c.part_index, CHUNKS.c.sequence)
            .execution_options(yield_per=8)
        )
        for row in rows:
            yield row.part_index, row.sequence, row.ciphertext
