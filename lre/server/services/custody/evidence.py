"""Evidence: building the documents, sealing them through the signer, and what
is written with them in the same transaction (the letter's new state, the log
entry, the sender's copy of a proof)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from lre.server.adapters.signer import SignerClient
from lre.server.domain.evidence import (
    EvidenceDocument,
    PartDigest,
    PartyDetails,
    RecipientAuthentication,
)
from lre.server.domain.letters import EvidenceEvent, Letter, LetterState, OutboxKind, Outcome
from lre.server.domain.log import LogRecord, sha256_hex
from lre.server.domain.records import EvidenceRecord, LetterRecord
from lre.server.storage.outbox import new_message
from lre.server.storage.store import Store

# The evidence the sender receives by e-mail as well (domain.md 6).
SENDER_PROOFS = frozenset(
    {
        EvidenceEvent.SUBMISSION_ACCEPTANCE,
        EvidenceEvent.CONSIGNMENT_ACCEPTANCE,
        EvidenceEvent.CONSIGNMENT_REJECTION,
        EvidenceEvent.ACCEPTANCE_REJECTION_EXPIRY,
        EvidenceEvent.NOTIFICATION_FOR_ACCEPTANCE_FAILURE,
    }
)
# A state change: the letter as stored, its state machine moved on, and the outcome.
Change = tuple[LetterRecord, Letter, Outcome]


class EvidenceRecorder:
    def __init__(
        self, signer: SignerClient, provider_name: str, clock: Callable[[], dt.datetime]
    ) -> None:
        self._signer = signer
        self._provider_name = provider_name
        self._clock = clock

    def document(
        self,
        letter: LetterRecord,
        event: EvidenceEvent,
        sender: PartyDetails,
        recipient: PartyDetails,
        digests: tuple[PartDigest, ...],
        at: dt.datetime,
        reason: tuple[str, str] | None = None,
        authentication: RecipientAuthentication | None = None,
    ) -> EvidenceRecord:
        """An evidence, not yet sealed; ``reason`` is (code, text)."""
        evidence_id = uuid.uuid4()
        document = EvidenceDocument(
            evidence_id=str(evidence_id),
            event=event,
            event_time=at,
            issuer=self._provider_name,
            sender=sender,
            recipient=recipient,
            letter_id=f"letters/{letter.id}",
            submission_time=letter.deposit_time,
            parts=digests,
            reason=reason[1] if reason else None,
            reason_code=reason[0] if reason else None,
            recipient_authentication=authentication,
        ).to_json()
        return EvidenceRecord(evidence_id, letter.id, event, at, document)

    def seal(self, evidence: EvidenceRecord) -> EvidenceRecord:
        return dataclasses.replace(evidence, seal=self._signer.seal(evidence.document))

    def seal_many(self, evidence: Sequence[EvidenceRecord]) -> list[EvidenceRecord]:
        """Sealed concurrently by the signer."""
        seals = self._signer.seal_many([e.document for e in evidence])
        return [dataclasses.replace(e, seal=s) for e, s in zip(evidence, seals, strict=True)]

    def write(
        self,
        store: Store,
        written: Iterable[tuple[LetterState, EvidenceRecord]],
        messages: Iterable[dict[str, Any]] = (),
    ) -> None:
        """Sealed evidence (each with the state its letter is now in) and what
        goes with it: its log entry, the sender's copy when it is a proof the
        sender receives, and ``messages`` (more outbox rows)."""
        written = list(written)
        now = self._clock()
        store.evidence.add(e for _, e in written)
        store.log.append(
            (
                (
                    LogRecord(
                        letter_id=str(e.letter_id),
                        state=state,
                        event_time=e.event_time,
                        event=e.event,
                        evidence_id=f"letters/{e.letter_id}/evidence/{e.id}",
                        document_sha256=sha256_hex(e.document),
                        seal_sha256=sha256_hex(e.seal),
                    ),
                    e.id,
                )
                for state, e in written
            ),
            now,
        )
        proofs = [
            new_message(
                e.letter_id,
                OutboxKind.PROOF,
                {"evidence": str(e.id), "event": e.event.value},
                now,
                now,
            )
            for _, e in written
            if e.event in SENDER_PROOFS
        ]
        store.outbox.add([*proofs, *messages])

    def record(
        self,
        store: Store,
        letter: LetterRecord,
        lifecycle: Letter,
        outcome: Outcome,
        reason: tuple[str, str] | None = None,
        authentication: RecipientAuthentication | None = None,
    ) -> EvidenceRecord:
        """Applies a state change and seals its evidence, in the caller's
        transaction; ``authentication`` when the recipient's session made it."""
        (evidence,) = self.record_many(
            store, [(letter, lifecycle, outcome)], reason, authentication
        )
        return evidence

    def record_many(
        self,
        store: Store,
        changes: list[Change],
        reason: tuple[str, str] | None = None,
        authentication: RecipientAuthentication | None = None,
    ) -> list[EvidenceRecord]:
        """State changes and their evidence, sealed concurrently, in the caller's
        transaction; the parties and parts of all the letters are read at once."""
        if not changes:
            return []
        ids = [letter.id for letter, _, _ in changes]
        parties = store.letters.parties(
            p for letter, _, _ in changes for p in (letter.sender_id, letter.recipient_id)
        )
        digests = store.letters.digests(ids)
        store.letters.save_lifecycles((letter.id, lifecycle) for letter, lifecycle, _ in changes)
        evidence = self.seal_many(
            [
                self.document(
                    letter,
                    outcome.event,
                    parties[letter.sender_id][0],
                    parties[letter.recipient_id][0],
                    tuple(digests[letter.id]),
                    outcome.event_time,
                    reason,
                    authentication,
                )
                for letter, _, outcome in changes
            ]
        )
        self.write(
            store,
            ((lifecycle.state, e) for (_, lifecycle, _), e in zip(changes, evidence, strict=True)),
        )
        return evidence
