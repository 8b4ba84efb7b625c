"""A mailing's proofs. Its refusals as evidence: each refused recipient's sealed
SubmissionRejection, read by its name
(``mailings/{id}/recipients/{position}/evidence/{id}``) like a letter's
evidence, by the mailing's sender or, journaled, by an operator or auditor,
with its signed PDF proof.

A refusal is not a letter: it is kept with the mailing's recipient row and
has no entry in the letters' log, so it has no offline bundle (the bundle
proves inclusion in that log); its seal and the PDF's signature are checked
like any other evidence's. And its sealed summary: who was sent what, and
for each recipient its letter or its refusal, sealed and as a signed PDF,
beside the CSV report (GetMailingReport)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable

from prometheus_client import Counter

from lre.server.adapters.signer import SignerClient
from lre.server.domain import identity, journal
from lre.server.domain.errors import NotFound
from lre.server.domain.evidence import EvidenceDocument, PartyDetails
from lre.server.domain.letters import EvidenceEvent
from lre.server.domain.log import LogKind
from lre.server.domain.mailings import REASONS, summary_document
from lre.server.domain.records import EvidenceRecord
from lre.server.proofs import ProofRenderer
from lre.server.services.custody.evidence import EvidenceRecorder
from lre.server.services.custody.queries import StaffReader
from lre.server.storage.store import Store, Stores

REFUSALS = Counter(
    "lre_mailing_refusals",
    "Recipients of mailings refused at deposit, by reason code (each has a sealed rejection).",
    ["reason"],
)
for _code in REASONS:
    REFUSALS.labels(_code)


def refusal_name(mailing_id: uuid.UUID, position: int, evidence_id: uuid.UUID) -> str:
    return f"mailings/{mailing_id}/recipients/{position}/evidence/{evidence_id}"


# A mailing's summary JSON and its seal to the signed PDF (proofs.summary_pdf, its signer bound).
SummaryRenderer = Callable[[bytes, bytes], bytes]


class MailingProofs:
    def __init__(
        self,
        stores: Stores,
        signer: SignerClient,
        evidence: EvidenceRecorder,
        render: ProofRenderer,
        render_summary: SummaryRenderer,
        clock: Callable[[], dt.datetime],
    ) -> None:
        self._stores = stores
        self._signer = signer
        self._evidence = evidence
        self._render = render
        self._render_summary = render_summary
        self._clock = clock

    def summary(self, session: identity.Session, mailing_id: uuid.UUID) -> bytes:
        """The mailing's summary, sealed now and as a signed PDF, for its
        sender: what was deposited and what became of each recipient at the
        deposit (the letters' later lives are in their own evidence)."""
        with self._stores.read() as store:
            mailing = store.mailings.get(mailing_id)
            if mailing is None or mailing.sender_id != uuid.UUID(session.party_id):
                raise NotFound("no such mailing")
            recipients = store.mailings.recipients(mailing_id)
            sender = store.letters.parties([mailing.sender_id])[mailing.sender_id][0]
        document = summary_document(
            mailing, sender, self._evidence.issuer().name, recipients, self._clock()
        )
        (seal,) = self._signer.seal_many([document])
        return self._render_summary(document, seal)

    def evidence(
        self,
        reader: identity.Session | StaffReader,
        mailing_id: uuid.UUID,
        position: int,
        evidence_id: uuid.UUID,
    ) -> EvidenceRecord:
        """The sealed rejection of one refused recipient: the mailing's
        sender's to read (never the recipient's: it got no letter), or any
        for staff, the read journaled in the transaction that reads."""
        name = refusal_name(mailing_id, position, evidence_id)
        if isinstance(reader, StaffReader):
            with self._stores.begin() as store:
                found = self._find(store, mailing_id, position, evidence_id)
                now = self._clock()
                store.log.append_journal(
                    journal.entry(
                        LogKind.EVIDENCE_READ,
                        f"mailings/{mailing_id}",
                        now,
                        actor=reader.actor,
                        role=reader.role,
                        method=reader.method,
                        evidence=name,
                    ),
                    now,
                )
                return found
        with self._stores.read() as store:
            mailing = store.mailings.get(mailing_id)
            if mailing is None or mailing.sender_id != uuid.UUID(reader.party_id):
                raise NotFound("no such evidence")
            return self._find(store, mailing_id, position, evidence_id)

    def proof(
        self,
        reader: identity.Session | StaffReader,
        mailing_id: uuid.UUID,
        position: int,
        evidence_id: uuid.UUID,
    ) -> bytes:
        """Its signed PDF proof, made on each request: refusals' proofs are
        asked for rarely, and each one made is as valid as the last."""
        evidence = self.evidence(reader, mailing_id, position, evidence_id)
        return self._render(evidence.document, evidence.seal)

    @staticmethod
    def _find(
        store: Store, mailing_id: uuid.UUID, position: int, evidence_id: uuid.UUID
    ) -> EvidenceRecord:
        row = store.mailings.recipient(mailing_id, position)
        if (
            row is None
            or row.evidence_id != evidence_id
            or row.evidence_document is None
            or row.evidence_seal is None
            or row.evidence_time is None
        ):
            raise NotFound("no such evidence")
        return EvidenceRecord(
            evidence_id,
            mailing_id,
            EvidenceEvent.SUBMISSION_REJECTION,
            row.evidence_time,
            row.evidence_document,
            row.evidence_seal,
        )


def as_found(
    name: str, party: uuid.UUID | None, found: dict[uuid.UUID, tuple[PartyDetails, bool]]
) -> PartyDetails:
    """A refused recipient as its rejection names it: the party found, or as
    the sender gave it when no party has that name."""
    return found[party][0] if party in found else PartyDetails(name, "", "")


def rejection(
    evidence: EvidenceRecorder,
    mailing_id: uuid.UUID,
    position: int,
    sender: PartyDetails,
    recipient: PartyDetails,
    now: dt.datetime,
    code: str,
) -> EvidenceRecord:
    """A refused recipient's SubmissionRejection, not yet sealed. Not a
    letter's evidence: kept with the recipient's row, not in the evidence table."""
    evidence_id = uuid.uuid4()
    document = EvidenceDocument(
        evidence_id=str(evidence_id),
        event=EvidenceEvent.SUBMISSION_REJECTION,
        event_time=now,
        policy_oid=evidence.policy_oid,
        issuer=evidence.issuer(),
        sender=sender,
        recipient=recipient,
        letter_id=f"mailings/{mailing_id}/recipients/{position}",
        submission_time=now,
        parts=(),
        reason=REASONS[code],
        reason_code=code,
    ).to_json()
    return EvidenceRecord(
        evidence_id, mailing_id, EvidenceEvent.SUBMISSION_REJECTION, now, document
    )
