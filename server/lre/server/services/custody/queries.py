"""What senders and recipients may read of their letters. A caller who is
neither the sender nor the recipient of a letter gets NOT_FOUND, as if it did
not exist."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from lre.server.clock import utcnow
from lre.server.domain import identity, journal
from lre.server.domain.errors import InvalidArgument, NotFound
from lre.server.domain.evidence import readable_by_recipient
from lre.server.domain.letters import LetterState, OutboxKind, known_to_recipient
from lre.server.domain.log import LogKind
from lre.server.domain.records import (
    ChargeRecord,
    EvidenceRecord,
    EvidenceWithProof,
    LetterRecord,
    MessageRecord,
    PartRecord,
)
from lre.server.services.proofs import StoredProofs
from lre.server.storage.paging import next_token, page
from lre.server.storage.store import Stores


@dataclass(frozen=True)
class StaffReader:
    """An operator or auditor reading evidence (no party session): who, as
    their client certificate names them, under which role, through which RPC."""

    actor: str
    role: str
    method: str


class CustodyQueries:
    def __init__(
        self,
        stores: Stores,
        proofs: StoredProofs,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self._stores = stores
        self._proofs = proofs
        self._clock = clock

    def letter_for(
        self, session: identity.Session, letter_id: uuid.UUID
    ) -> tuple[LetterRecord, list[PartRecord]]:
        """The letter if the caller sent it or receives it."""
        party = uuid.UUID(session.party_id)
        with self._stores.read() as store:
            letter = store.letters.get(letter_id)
            if letter is None or party not in (letter.sender_id, letter.recipient_id):
                raise NotFound("no such letter")
            if party != letter.sender_id and not known_to_recipient(letter.state):
                raise NotFound("no such letter")
            return letter, store.letters.parts(letter_id)

    def letters_for(
        self,
        session: identity.Session,
        as_sender: bool,
        state: LetterState | None,
        page_size: int,
        page_token: str,
    ) -> tuple[list[LetterRecord], str]:
        """The caller's letters, as sender or as recipient, newest first."""
        with self._stores.read() as store:
            return store.letters.page_for(
                uuid.UUID(session.party_id), as_sender, state, page_size, page_token
            )

    def charges_for(
        self,
        session: identity.Session,
        start: dt.datetime | None,
        end: dt.datetime | None,
        page_size: int,
        page_token: str,
    ) -> tuple[list[ChargeRecord], str]:
        """What the caller owes, oldest first, for invoicing."""
        if start is not None and end is not None and end < start:
            raise InvalidArgument("end_time", "must not be before start_time")
        with self._stores.read() as store:
            return store.charges.page_for(
                uuid.UUID(session.party_id), start, end, page_size, page_token
            )

    def evidence_for(self, session: identity.Session, letter_id: uuid.UUID) -> list[EvidenceRecord]:
        """The sender reads every evidence of its letters (R53-2, R53-3: one year
        at least); the recipient those about them once they accepted, none before."""
        letter, _ = self.letter_for(session, letter_id)
        with self._stores.read() as store:
            evidence = store.evidence.of_letter(letter_id)
        if uuid.UUID(session.party_id) == letter.sender_id:
            return evidence
        sender_visible = letter.lifecycle().sender_visible_to_recipient
        return [e for e in evidence if readable_by_recipient(e.event, sender_visible)]

    def evidence_page(
        self,
        reader: identity.Session | StaffReader,
        letter_id: uuid.UUID,
        page_size: int,
        page_token: str,
    ) -> tuple[list[EvidenceRecord], str]:
        """A page of the letter's evidence ``reader`` may read (``evidence_for``,
        ``evidence_for_staff``), in the order of the events, and the next
        page's token. A letter has a handful: read whole, then cut."""
        scope = f"letters/{letter_id}/evidence"
        size, offset = page(page_size, page_token, scope)  # checked before a read is journaled
        if isinstance(reader, StaffReader):
            rows = self.evidence_for_staff(reader, letter_id)
        else:
            rows = self.evidence_for(reader, letter_id)
        token = next_token(offset, size, size, scope) if offset + size < len(rows) else ""
        return rows[offset : offset + size], token

    def evidence(
        self, session: identity.Session, letter_id: uuid.UUID, evidence_id: uuid.UUID
    ) -> EvidenceRecord:
        """One evidence the caller may read (``evidence_for``)."""
        for row in self.evidence_for(session, letter_id):
            if row.id == evidence_id:
                return row
        raise NotFound("no such evidence")

    def evidence_proof(
        self, session: identity.Session, letter_id: uuid.UUID, evidence_id: uuid.UUID
    ) -> bytes:
        """The signed PDF proof of an evidence the caller may read, as stored
        (made on the first request if nothing needed it before)."""
        return self._proofs.pdf(self.evidence_with_proof(session, letter_id, evidence_id))

    def evidence_with_proof(
        self, session: identity.Session | None, letter_id: uuid.UUID, evidence_id: uuid.UUID
    ) -> EvidenceWithProof:
        """One evidence, with its stored PDF proof: one the session's party may
        read (``evidence_for``); without a session, any letter's (operators and
        auditors: the API decides who comes without one)."""
        if session is not None:
            self.evidence(session, letter_id, evidence_id)
        with self._stores.read() as store:
            row = store.evidence.get(evidence_id)
        if row is None or row.letter_id != letter_id:
            raise NotFound("no such evidence")
        return row

    def evidence_for_staff(
        self, reader: StaffReader, letter_id: uuid.UUID, evidence_id: uuid.UUID | None = None
    ) -> list[EvidenceRecord]:
        """Every evidence of any letter (or the one named), read-only, for an
        operator or auditor; the read is journaled (who, which letter) in the
        transaction that reads, so that no such read goes unjournaled."""
        now = self._clock()
        with self._stores.begin() as store:
            if store.letters.get(letter_id) is None:
                raise NotFound("no such letter")
            evidence = store.evidence.of_letter(letter_id)
            if evidence_id is not None:
                evidence = [e for e in evidence if e.id == evidence_id]
                if not evidence:
                    raise NotFound("no such evidence")
            read = journal.entry(
                LogKind.EVIDENCE_READ,
                f"letters/{letter_id}",
                now,
                actor=reader.actor,
                role=reader.role,
                method=reader.method,
                evidence=f"letters/{letter_id}/evidence/{evidence_id}" if evidence_id else None,
            )
            store.log.append_journal(read, now)
        return evidence

    def evidence_proof_for_staff(
        self, reader: StaffReader, letter_id: uuid.UUID, evidence_id: uuid.UUID
    ) -> bytes:
        self.evidence_for_staff(reader, letter_id, evidence_id)
        return self._proofs.pdf(self.evidence_with_proof(None, letter_id, evidence_id))

    def notifications_for(
        self, session: identity.Session, letter_id: uuid.UUID, page_size: int, page_token: str
    ) -> tuple[list[MessageRecord], str]:
        """A letter's messages: all of them for its sender, the recipient's own
        (notice and reminders) for its recipient."""
        letter, _ = self.letter_for(session, letter_id)
        kinds = None
        if uuid.UUID(session.party_id) != letter.sender_id:
            kinds = [k for k in OutboxKind if k.to_recipient]
        with self._stores.read() as store:
            return store.outbox.page_for_letter(letter_id, kinds, page_size, page_token)
