"""A mailing's refusals as evidence: each refused recipient's sealed
SubmissionRejection, read by its name
(``mailings/{id}/recipients/{position}/evidence/{id}``) like a letter's
evidence, by the mailing's sender or, journaled, by an operator or auditor,
with its signed PDF proof.

A refusal is not a letter: it is kept with the mailing's recipient row and
has no entry in the letters' log, so it has no offline bundle (the bundle
proves inclusion in that log); its seal and the PDF's signature are checked
like any other evidence's."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable

from prometheus_client import Counter

from lre.server.domain import identity, journal
from lre.server.domain.errors import NotFound
from lre.server.domain.letters import EvidenceEvent
from lre.server.domain.log import LogKind
from lre.server.domain.mailings import REASONS
from lre.server.domain.records import EvidenceRecord
from lre.server.proofs import ProofRenderer
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


class MailingRefusals:
    def __init__(
        self, stores: Stores, render: ProofRenderer, clock: Callable[[], dt.datetime]
    ) -> None:
        self._stores = stores
        self._render = render
        self._clock = clock

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
