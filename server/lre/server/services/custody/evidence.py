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
from lre.server.domain import identity
from lre.server.domain.evidence import (
    Authentication,
    EvidenceDocument,
    IssuerDetails,
    PartDigest,
    PartyDetails,
    check_times,
)
from lre.server.domain.letters import EvidenceEvent, Letter, LetterState, OutboxKind, Outcome
from lre.server.domain.log import LogRecord, sha256_hex
from lre.server.domain.records import EvidenceRecord, LetterRecord
from lre.server.proofs.document import read_seal
from lre.server.services.notification import PROOF_TO_RECIPIENT
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
# The recipient's copy of their own acts, once the sender is known to them
# (R53-3 I: a recipient who refuses never learns who sent the letter).
RECIPIENT_PROOFS = frozenset({EvidenceEvent.CONSIGNMENT_ACCEPTANCE, EvidenceEvent.CONTENT_HANDOVER})
# How long after its event the notice of a letter may still be sealed: it is
# dated when the hand-off to the mail server returned (R53-3 I: the window
# counts from that day), and sealed then, or later if the signer was down
# (docs/evidence.md, "Time"). Past this, a clock is wrong or the outage too long
# to date an act by the record alone: the seal is refused and an operator decides.
NOTICE_SEAL_BOUND = dt.timedelta(hours=24)
# Events dated by the law rather than when they are recorded, and how late their
# seal may follow (None: no bound). A non-claim is dated at the end of the window
# (its seal follows whenever the sweep runs); a notice at its hand-off.
_DATED_IN_THE_PAST: dict[EvidenceEvent, dt.timedelta | None] = {
    EvidenceEvent.ACCEPTANCE_REJECTION_EXPIRY: None,
    EvidenceEvent.NOTIFICATION_FOR_ACCEPTANCE: NOTICE_SEAL_BOUND,
}
# A state change: the letter as stored, its state machine moved on, and the outcome.
Change = tuple[LetterRecord, Letter, Outcome]
# A coded reason (EN 319 522-2 ReasonIdentifier) and its text, if any.
Reason = tuple[str, str | None]


class EvidenceRecorder:
    def __init__(
        self,
        signer: SignerClient,
        provider_name: str,
        policy_oid: str,
        clock: Callable[[], dt.datetime],
        max_seal_delay: dt.timedelta = dt.timedelta(seconds=30),
        clock_skew: dt.timedelta = dt.timedelta(0),
    ) -> None:
        """``max_seal_delay``: how long after its event an evidence may be sealed
        (the signer's deadline, with room for a batch); ``clock_skew``: how far
        ``clock`` may be from the TSA's beyond its accuracy. See ``check_times``."""
        self._signer = signer
        self._provider_name = provider_name
        self._policy_oid = policy_oid
        self._clock = clock
        self._max_seal_delay = max_seal_delay
        self._clock_skew = clock_skew
        self._issuer: IssuerDetails | None = None

    @property
    def policy_oid(self) -> str:
        """The evidence issuer policy every evidence names (EN 319 522-2)."""
        return self._policy_oid

    def issuer(self) -> IssuerDetails:
        """The provider and its seal certificate, asked of the signer once."""
        if self._issuer is None:
            chain = self._signer.certificate_chain("seal")
            self._issuer = IssuerDetails.of(self._provider_name, chain[0])
        return self._issuer

    def document(
        self,
        letter: LetterRecord,
        event: EvidenceEvent,
        sender: PartyDetails,
        recipient: PartyDetails,
        digests: tuple[PartDigest, ...],
        at: dt.datetime,
        reason: Reason | None = None,
        sender_session: identity.Session | None = None,
        recipient_session: identity.Session | None = None,
    ) -> EvidenceRecord:
        """An evidence, not yet sealed. ``reason`` is (code, text or None); the
        sessions are those the event happened in, when a party authenticated for it."""
        evidence_id = uuid.uuid4()
        document = EvidenceDocument(
            evidence_id=str(evidence_id),
            event=event,
            event_time=at,
            policy_oid=self._policy_oid,
            issuer=self.issuer(),
            sender=sender,
            recipient=recipient,
            letter_id=f"letters/{letter.id}",
            submission_time=letter.deposit_time,
            parts=digests,
            sender_authentication=Authentication.of(sender_session) if sender_session else None,
            recipient_authentication=(
                Authentication.of(recipient_session) if recipient_session else None
            ),
            reason_code=reason[0] if reason else None,
            reason=reason[1] if reason else None,
            letter_reference=letter.reference,
            notification_time=letter.notification_time,
        ).to_json()
        return EvidenceRecord(evidence_id, letter.id, event, at, document)

    def seal(self, evidence: EvidenceRecord) -> EvidenceRecord:
        (sealed,) = self.seal_many([evidence])
        return sealed

    def seal_many(self, evidence: Sequence[EvidenceRecord]) -> list[EvidenceRecord]:
        """Sealed concurrently by the signer, each checked to agree in time with
        its seal's timestamp (EvidenceTimeMismatch otherwise)."""
        seals = self._signer.seal_many([e.document for e in evidence])
        for e, seal in zip(evidence, seals, strict=True):
            stamped = read_seal(e.document, seal)
            check_times(
                e.event_time,
                stamped.timestamp_time,
                stamped.timestamp_accuracy,
                _DATED_IN_THE_PAST.get(e.event, self._max_seal_delay),
                self._clock_skew,
            )
        return [dataclasses.replace(e, seal=s) for e, s in zip(evidence, seals, strict=True)]

    def write(
        self,
        store: Store,
        written: Iterable[tuple[LetterState, EvidenceRecord]],
        messages: Iterable[dict[str, Any]] = (),
    ) -> None:
        """Sealed evidence (each with the state its letter is now in) and what
        goes with it: its log entry, the sender's or the recipient's copy when
        it is a proof they receive by e-mail, and ``messages`` (more outbox rows)."""
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
                {"evidence": str(e.id), "event": e.event.value, **to},
                now,
                now,
            )
            for _, e in written
            for proofs, to in (
                (SENDER_PROOFS, {}),
                (RECIPIENT_PROOFS, {"to": PROOF_TO_RECIPIENT}),
            )
            if e.event in proofs
        ]
        store.outbox.add([*proofs, *messages])

    def record(
        self,
        store: Store,
        letter: LetterRecord,
        lifecycle: Letter,
        outcome: Outcome,
        reason: Reason | None = None,
        recipient_session: identity.Session | None = None,
    ) -> EvidenceRecord:
        """Applies a state change and seals its evidence, in the caller's
        transaction; ``recipient_session`` when the recipient caused it."""
        (evidence,) = self.record_many(
            store, [(letter, lifecycle, outcome)], reason, recipient_session
        )
        return evidence

    def record_many(
        self,
        store: Store,
        changes: list[Change],
        reason: Reason | None = None,
        recipient_session: identity.Session | None = None,
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
                    recipient_session=recipient_session,
                )
                for letter, _, outcome in changes
            ]
        )
        self.write(
            store,
            ((lifecycle.state, e) for (_, lifecycle, _), e in zip(changes, evidence, strict=True)),
        )
        return evidence
