"""CustodyService over gRPC. Who may call each RPC is decided by
lre.server.api.policy; here, which letters a user's session may see."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from typing import Any

import grpc

from lre.server.api.auth import actor, optional_session, session_of, staff_role
from lre.server.api.convert import (
    STATES,
    charge_message,
    declared_parts,
    evidence_message,
    letter_message,
    mailing_message,
    request_time,
    tree_head_message,
)
from lre.server.api.errors import domain_errors
from lre.server.api.names import parse_evidence_name, parse_id, parse_refusal_name
from lre.server.api.streams import WIRE_CHUNK, envelope_then_chunks, pieces
from lre.server.domain import identity
from lre.server.domain.errors import (
    AuthenticationFailed,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
)
from lre.server.domain.evidence import Delegate
from lre.server.services.custody import (
    CustodyQueries,
    DecisionService,
    DepositService,
    MailingService,
    StaffReader,
)
from lre.server.services.custody.bundles import EvidenceBundles
from lre.server.services.custody.mailing_proofs import MailingProofs, refusal_name
from lre.server.services.events import EventLog
from lre.server.services.identity import IdentityService
from lre.v1 import common_pb2, custody_pb2, custody_pb2_grpc


class CustodyServicer(custody_pb2_grpc.CustodyServiceServicer):
    def __init__(
        self,
        deposits: DepositService,
        decisions: DecisionService,
        mailings: MailingService,
        queries: CustodyQueries,
        identities: IdentityService,
        events: EventLog,
        bundles: EvidenceBundles,
        mailing_proofs: MailingProofs,
    ) -> None:
        self._deposits = deposits
        self._decisions = decisions
        self._mailings = mailings
        self._queries = queries
        self._identities = identities
        self._events = events
        self._bundles = bundles
        self._mailing_proofs = mailing_proofs

    def DepositLetter(
        self,
        request_iterator: Iterator[custody_pb2.DepositLetterRequest],
        context: grpc.ServicerContext,
    ) -> custody_pb2.Letter:
        with domain_errors(context):
            session = session_of(context, self._identities)
            envelope, chunks = envelope_then_chunks(request_iterator)
            letter, parts = self._deposits.deposit(
                session,
                envelope.request_id,
                parse_id(envelope.recipient, "envelope.recipient", "parties"),
                declared_parts(envelope.parts),
                chunks,
                _delegate(envelope),
            )
            return letter_message(letter, parts, uuid.UUID(session.party_id))

    def DepositMailing(
        self,
        request_iterator: Iterator[custody_pb2.DepositMailingRequest],
        context: grpc.ServicerContext,
    ) -> custody_pb2.Mailing:
        with domain_errors(context):
            session = session_of(context, self._identities)
            envelope, chunks = envelope_then_chunks(request_iterator)
            view = self._mailings.deposit(
                session,
                envelope.request_id,
                envelope.reference,
                [(r.recipient, r.letter_reference) for r in envelope.recipients],
                declared_parts(envelope.parts),
                chunks,
                _delegate(envelope),
            )
            return mailing_message(view, with_recipients=True)

    def GetMailing(
        self, request: custody_pb2.GetMailingRequest, context: grpc.ServicerContext
    ) -> custody_pb2.Mailing:
        with domain_errors(context):
            session = session_of(context, self._identities)
            view = self._mailings.get(session, parse_id(request.name, "name", "mailings"))
            return mailing_message(view, with_recipients=True)

    def ListMailings(
        self, request: custody_pb2.ListMailingsRequest, context: grpc.ServicerContext
    ) -> custody_pb2.ListMailingsResponse:
        with domain_errors(context):
            session = session_of(context, self._identities)
            views, token = self._mailings.page_for(session, request.page_size, request.page_token)
            return custody_pb2.ListMailingsResponse(
                mailings=[mailing_message(v, with_recipients=False) for v in views],
                next_page_token=token,
            )

    def GetMailingReport(
        self, request: custody_pb2.GetMailingReportRequest, context: grpc.ServicerContext
    ) -> Iterator[custody_pb2.MailingReportChunk]:
        with domain_errors(context):
            session = session_of(context, self._identities)
            mailing_id = parse_id(request.name, "name", "mailings")
            if request.format not in custody_pb2.MailingReportFormat.values():
                raise InvalidArgument("format", "unknown report format")
            if request.format == custody_pb2.MAILING_REPORT_FORMAT_SEALED_PDF:
                # Made whole before the first chunk: an error is a status, never a cut PDF.
                pdf = self._mailing_proofs.summary(session, mailing_id)
                for piece in pieces(pdf):
                    yield custody_pb2.MailingReportChunk(data=piece)
                return
            lines = self._mailings.report(session, mailing_id)
            pending: list[bytes] = []
            size = 0
            for line in lines:
                pending.append(line.encode())
                size += len(pending[-1])
                if size >= WIRE_CHUNK:
                    yield custody_pb2.MailingReportChunk(data=b"".join(pending))
                    pending, size = [], 0
            if pending:
                yield custody_pb2.MailingReportChunk(data=b"".join(pending))

    def AcceptLetter(
        self, request: custody_pb2.AcceptLetterRequest, context: grpc.ServicerContext
    ) -> custody_pb2.Letter:
        with domain_errors(context):
            session = session_of(context, self._identities)
            letter = self._decisions.accept(session, parse_id(request.name, "name", "letters"))
            letter, parts = self._queries.letter_for(session, letter.id)
            return letter_message(letter, parts, uuid.UUID(session.party_id))

    def RefuseLetter(
        self, request: custody_pb2.RefuseLetterRequest, context: grpc.ServicerContext
    ) -> custody_pb2.Letter:
        with domain_errors(context):
            session = session_of(context, self._identities)
            letter = self._decisions.refuse(
                session, parse_id(request.name, "name", "letters"), request.reason
            )
            letter, parts = self._queries.letter_for(session, letter.id)
            return letter_message(letter, parts, uuid.UUID(session.party_id))

    def DownloadLetterContent(
        self, request: custody_pb2.DownloadLetterContentRequest, context: grpc.ServicerContext
    ) -> Iterator[custody_pb2.ContentChunk]:
        with domain_errors(context):
            session = session_of(context, self._identities)
            chunks = self._decisions.download(session, parse_id(request.name, "name", "letters"))
            for part, data in chunks:
                for piece in pieces(data):
                    yield custody_pb2.ContentChunk(part_index=part, data=piece)

    def SetLegalHold(
        self, request: custody_pb2.SetLegalHoldRequest, context: grpc.ServicerContext
    ) -> custody_pb2.Letter:
        # Operators only (the policy): no user session, every field visible.
        with domain_errors(context):
            letter, parts = self._decisions.set_legal_hold(
                parse_id(request.name, "name", "letters"), request.legal_hold, actor()
            )
            return letter_message(letter, parts, letter.sender_id)

    def ListLetters(
        self, request: custody_pb2.ListLettersRequest, context: grpc.ServicerContext
    ) -> custody_pb2.ListLettersResponse:
        with domain_errors(context):
            session = session_of(context, self._identities)
            if request.role not in (
                custody_pb2.LETTER_ROLE_SENDER,
                custody_pb2.LETTER_ROLE_RECIPIENT,
            ):
                raise InvalidArgument("role", "must be LETTER_ROLE_SENDER or LETTER_ROLE_RECIPIENT")
            state = None
            if request.state != common_pb2.LETTER_STATE_UNSPECIFIED:
                state = next((s for s, v in STATES.items() if v == request.state), None)
                if state is None:
                    raise InvalidArgument("state", "unknown letter state")
            if request.mailing:
                if request.role != custody_pb2.LETTER_ROLE_SENDER:
                    raise InvalidArgument("mailing", "a mailing's letters are listed by its sender")
                letters, token = self._mailings.letters(
                    session,
                    parse_id(request.mailing, "mailing", "mailings"),
                    state,
                    request.page_size,
                    request.page_token,
                )
            else:
                letters, token = self._queries.letters_for(
                    session,
                    request.role == custody_pb2.LETTER_ROLE_SENDER,
                    state,
                    request.page_size,
                    request.page_token,
                )
            viewer = uuid.UUID(session.party_id)
            return custody_pb2.ListLettersResponse(
                letters=[letter_message(letter, [], viewer) for letter in letters],
                next_page_token=token,
            )

    def ListCharges(
        self, request: custody_pb2.ListChargesRequest, context: grpc.ServicerContext
    ) -> custody_pb2.ListChargesResponse:
        with domain_errors(context):
            session = session_of(context, self._identities)
            if request.sender and request.sender != f"parties/{session.party_id}":
                raise NotFound("no such sender")
            charges, token = self._queries.charges_for(
                session,
                _time(request, "start_time"),
                _time(request, "end_time"),
                request.page_size,
                request.page_token,
            )
            return custody_pb2.ListChargesResponse(
                charges=[charge_message(c) for c in charges],
                next_page_token=token,
            )

    def GetLetter(
        self, request: custody_pb2.GetLetterRequest, context: grpc.ServicerContext
    ) -> custody_pb2.Letter:
        with domain_errors(context):
            session = session_of(context, self._identities)
            letter, parts = self._queries.letter_for(
                session, parse_id(request.name, "name", "letters")
            )
            return letter_message(letter, parts, uuid.UUID(session.party_id))

    def ListEvidence(
        self, request: custody_pb2.ListEvidenceRequest, context: grpc.ServicerContext
    ) -> custody_pb2.ListEvidenceResponse:
        with domain_errors(context):
            reader = self._evidence_reader(context, "ListEvidence")
            rows, token = self._queries.evidence_page(
                reader,
                parse_id(request.parent, "parent", "letters"),
                request.page_size,
                request.page_token,
            )
            return custody_pb2.ListEvidenceResponse(
                evidence=[evidence_message(r) for r in rows], next_page_token=token
            )

    def _evidence_reader(
        self, context: grpc.ServicerContext, method: str
    ) -> identity.Session | StaffReader:
        """A party's session (the portal rules: the sender, the recipient after
        acceptance), or, for a call without one, an operator or auditor, who
        reads any letter's evidence and is journaled doing so."""
        session = optional_session(context, self._identities)
        if session is not None:
            return session
        role = staff_role()
        if not role:
            raise AuthenticationFailed("a session token is required (authorization: Bearer ...)")
        return StaffReader(actor(), role, method)

    def GetTreeHead(
        self, request: custody_pb2.GetTreeHeadRequest, context: grpc.ServicerContext
    ) -> custody_pb2.TreeHead:
        with domain_errors(context):
            if request.tree_size < 0:
                raise InvalidArgument("tree_size", "0 (the latest) or a sealed size")
            return tree_head_message(self._events.head(request.tree_size or None))

    def SealTreeHead(
        self, request: custody_pb2.SealTreeHeadRequest, context: grpc.ServicerContext
    ) -> custody_pb2.TreeHead:
        with domain_errors(context):
            head = self._events.seal_head()
            if head is None:
                raise FailedPrecondition("the log is empty")
            return tree_head_message(head)

    def GetInclusionProof(
        self, request: custody_pb2.GetInclusionProofRequest, context: grpc.ServicerContext
    ) -> custody_pb2.InclusionProof:
        with domain_errors(context):
            session = session_of(context, self._identities)
            letter_id, evidence_id = parse_evidence_name(request.evidence, "evidence")
            if not any(e.id == evidence_id for e in self._queries.evidence_for(session, letter_id)):
                raise NotFound("no such evidence")
            if request.tree_size < 0:
                raise InvalidArgument("tree_size", "0 (the latest) or a sealed size")
            entry, head, proof = self._events.inclusion(evidence_id, request.tree_size or None)
            assert entry.seq is not None
            return custody_pb2.InclusionProof(
                leaf_index=entry.seq,
                leaf=entry.leaf,
                hashes=proof,
                tree_head=tree_head_message(head),
            )

    def GetConsistencyProof(
        self, request: custody_pb2.GetConsistencyProofRequest, context: grpc.ServicerContext
    ) -> custody_pb2.ConsistencyProof:
        with domain_errors(context):
            first, second, proof = self._events.consistency(
                request.first_tree_size, request.second_tree_size
            )
            return custody_pb2.ConsistencyProof(
                hashes=proof, first=tree_head_message(first), second=tree_head_message(second)
            )

    def GetEvidence(
        self, request: custody_pb2.GetEvidenceRequest, context: grpc.ServicerContext
    ) -> custody_pb2.Evidence:
        with domain_errors(context):
            reader = self._evidence_reader(context, "GetEvidence")
            if request.name.startswith("mailings/"):
                refusal = parse_refusal_name(request.name, "name")
                return evidence_message(
                    self._mailing_proofs.evidence(reader, *refusal), refusal_name(*refusal)
                )
            letter_id, evidence_id = parse_evidence_name(request.name, "name")
            if isinstance(reader, StaffReader):
                (row,) = self._queries.evidence_for_staff(reader, letter_id, evidence_id)
                return evidence_message(row)
            return evidence_message(self._queries.evidence(reader, letter_id, evidence_id))

    def GetEvidenceProof(
        self, request: custody_pb2.GetEvidenceProofRequest, context: grpc.ServicerContext
    ) -> custody_pb2.EvidenceProof:
        with domain_errors(context):
            reader = self._evidence_reader(context, "GetEvidenceProof")
            if request.name.startswith("mailings/"):
                refusal = parse_refusal_name(request.name, "name")
                pdf = self._mailing_proofs.proof(reader, *refusal)
                return custody_pb2.EvidenceProof(name=refusal_name(*refusal), pdf=pdf)
            letter_id, evidence_id = parse_evidence_name(request.name, "name")
            if isinstance(reader, StaffReader):
                pdf = self._queries.evidence_proof_for_staff(reader, letter_id, evidence_id)
            else:
                pdf = self._queries.evidence_proof(reader, letter_id, evidence_id)
            name = f"letters/{letter_id}/evidence/{evidence_id}"
            return custody_pb2.EvidenceProof(name=name, pdf=pdf)

    def GetEvidenceBundle(
        self, request: custody_pb2.GetEvidenceBundleRequest, context: grpc.ServicerContext
    ) -> Iterator[custody_pb2.EvidenceBundleChunk]:
        with domain_errors(context):
            reader = self._evidence_reader(context, "GetEvidenceBundle")
            if request.name.startswith("mailings/"):
                # One the caller may read (else NOT_FOUND), before saying it has no bundle.
                self._mailing_proofs.evidence(reader, *parse_refusal_name(request.name, "name"))
                raise FailedPrecondition(
                    "a mailing's refusal is not in the letters' log, so it has no bundle: "
                    "GetEvidence gives it sealed, GetEvidenceProof as a signed PDF"
                )
            letter_id, evidence_id = parse_evidence_name(request.name, "name")
            # Built whole before the first chunk: an error is a status, never a cut ZIP.
            bundle = self._bundles.bundle(reader, letter_id, evidence_id)
            for piece in pieces(bundle):
                yield custody_pb2.EvidenceBundleChunk(data=piece)


def _delegate(envelope: Any) -> Delegate | None:
    """Who acted for the sender, as the envelope (a letter's or a mailing's) names them."""
    if not envelope.HasField("sender_delegate"):
        return None
    stated = envelope.sender_delegate
    return Delegate.stated(
        stated.given_name, stated.family_name, stated.role, "envelope.sender_delegate"
    )


def _time(request: custody_pb2.ListChargesRequest, field: str) -> dt.datetime | None:
    return request_time(getattr(request, field), field) if request.HasField(field) else None
