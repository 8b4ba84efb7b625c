"""The offline evidence bundle of one evidence (lre.server.proofs.bundle):
gathered here from the evidence, its stored PDF proof and the log's
inclusion proof into a sealed tree head; the certificate chains are those
the seals carry (valid when they were sealed)."""

from __future__ import annotations

import uuid

from lre.server.domain import identity
from lre.server.proofs.bundle import build_bundle
from lre.server.services.custody.queries import CustodyQueries, StaffReader
from lre.server.services.events import EventLog
from lre.server.services.proofs import StoredProofs


class EvidenceBundles:
    def __init__(
        self,
        queries: CustodyQueries,
        proofs: StoredProofs,
        events: EventLog,
    ) -> None:
        self._queries = queries
        self._proofs = proofs
        self._events = events

    def bundle(
        self,
        reader: identity.Session | StaffReader,
        letter_id: uuid.UUID,
        evidence_id: uuid.UUID,
    ) -> bytes:
        """The bundle ZIP of an evidence the caller may read: with a session,
        what GetEvidenceProof gives that party; an operator or auditor, any
        evidence, the read journaled.

        FailedPrecondition until a sealed tree head contains the evidence: the
        bundle proves the evidence is in the log, so it waits for the next head
        rather than sealing one per request (heads are sealed periodically)."""
        if isinstance(reader, StaffReader):
            self._queries.evidence_for_staff(reader, letter_id, evidence_id)
            evidence = self._queries.evidence_with_proof(None, letter_id, evidence_id)
        else:
            evidence = self._queries.evidence_with_proof(reader, letter_id, evidence_id)
        # Checked before the PDF is made: a bundle that cannot be had costs nothing.
        entry, head, path = self._events.inclusion(evidence.id)
        assert entry.seq is not None
        return build_bundle(
            evidence=evidence.document,
            seal=evidence.seal,
            archive_seal=evidence.archive_seal,
            proof_pdf=self._proofs.pdf(evidence),
            leaf=entry.leaf,
            leaf_index=entry.seq,
            audit_path=path,
            tree_head=head.document,
            tree_head_seal=head.seal,
        )
