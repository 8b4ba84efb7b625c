"""CustodyService over gRPC. Who may call each RPC is decided by
server.api.policy; here, which letters a user's session may see."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from typing import Any

import grpc

from lre.server.api.auth import actor, optional_session, session_of, staff_role
from lre.server.api.convert import timestamp
from lre.server.api.errors import domain_errors
from lre.server.api.names import parse_id
from lre.server.domain import identity
from lre.server.domain.errors import (
    AuthenticationFailed,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
)
from lre.server.domain.letters import EvidenceEvent, LetterState
from lre.server.domain.mailings import MailingRecipientRecord
from lre.server.domain.records import EvidenceRecord, LetterRecord, PartRecord, TreeHeadRecord
from lre.server.services.custody import (
    CustodyQueries,
    DecisionService,
    DeclaredPart,
    DepositService,
    MailingService,
    MailingView,
    StaffReader,
)
from lre.server.services.custody.bundles import EvidenceBundles
from lre.server.services.events import EventLog
from lre.server.services.identity import IdentityService
from lre.v1 import common_pb2, custody_pb2, custody_pb2_grpc

WIRE_CHUNK = 64 * 1024
STATES = {state: getattr(common_pb2, f"LETTER_STATE_{state.name}") for state in LetterState}
EVENTS = {event: getattr(common_pb2, f"EVIDENCE_EVENT_{event.name}") for event in EvidenceEvent}


def _part(part: PartRecord, disclosed: bool) -> custody_pb2.ContentPart:
    if not disclosed:
        # Nothing the sender chose before acceptance: a neutral label, the size only.
        return custody_pb2.ContentPart(
            filename=f"part {part.index + 1}", size_bytes=part.size_bytes
        )
    return custody_pb2.ContentPart(
        filename=part.filename,
        media_type=part.media_type,
        size_bytes=part.size_bytes,
        digest=common_pb2.Digest(algorithm=common_pb2.HASH_ALGORITHM_SHA256, value=part.sha256),
    )


def letter_message(
    letter: LetterRecord, parts: list[PartRecord], viewer: uuid.UUID
) -> custody_pb2.Letter:
    """The letter as ``viewer`` may see it. Before acceptance the recipient is
    told neither who the sender is nor anything the sender chose (R53-3 I)."""
    disclosed = viewer == letter.sender_id or letter.lifecycle().sender_visible_to_recipient
    return custody_pb2.Letter(
        name=f"letters/{letter.id}",
        reference=letter.reference,
        state=STATES[letter.state],
        sender=f"parties/{letter.sender_id}" if disclosed else "",
        recipient=f"parties/{letter.recipient_id}",
        parts=[_part(p, disclosed) for p in parts],
        deposit_time=timestamp(letter.deposit_time),
        notification_time=timestamp(letter.notification_time),
        acceptance_deadline=timestamp(letter.acceptance_deadline),
        decision_time=timestamp(letter.decision_time),
        legal_hold=letter.legal_hold,
    )


def _evidence(row: EvidenceRecord) -> custody_pb2.Evidence:
    return custody_pb2.Evidence(
        name=f"letters/{row.letter_id}/evidence/{row.id}",
        event=EVENTS[row.event],
        event_time=timestamp(row.event_time),
        document=row.document,
        seal=row.seal,
    )


def _evidence_name(name: str, field: str) -> tuple[uuid.UUID, uuid.UUID]:
    parts = name.split("/")
    if len(parts) != 4 or parts[0] != "letters" or parts[2] != "evidence":
        raise InvalidArgument(field, "must be letters/{id}/evidence/{id}")
    return (
        parse_id(f"letters/{parts[1]}", field, "letters"),
        parse_id(f"evidence/{parts[3]}", field, "evidence"),
    )


def _mailing_recipient(r: MailingRecipientRecord) -> custody_pb2.MailingRecipientResult:
    result = custody_pb2.MailingRecipientResult(
        index=r.position, recipient=r.recipient, letter_reference=r.letter_reference
    )
    if r.letter_id is not None:
        result.letter = f"letters/{r.letter_id}"
    else:
        result.refusal.CopyFrom(
            custody_pb2.MailingRefusal(
                reason_code=r.reason_code or "",
                reason=r.reason or "",
                evidence=custody_pb2.Evidence(
                    name=f"mailings/{r.mailing_id}/recipients/{r.position}/evidence/{r.evidence_id}",
                    event=common_pb2.EVIDENCE_EVENT_SUBMISSION_REJECTION,
                    event_time=timestamp(r.evidence_time),
                    document=r.evidence_document or b"",
                    seal=r.evidence_seal or b"",
                ),
            )
        )
    return result


def mailing_message(view: MailingView, with_recipients: bool) -> custody_pb2.Mailing:
    mailing, states = view.mailing, view.states
    refusals: dict[str, int] = {}
    for r in view.recipients:
        if r.reason_code:
            refusals[r.reason_code] = refusals.get(r.reason_code, 0) + 1
    letters = sum(n for state, n in states.items() if state is not LetterState.REJECTED)
    recipients = len(view.recipients) if view.recipients else letters
    return custody_pb2.Mailing(
        name=f"mailings/{mailing.id}",
        reference=mailing.reference,
        sender=f"parties/{mailing.sender_id}",
        parts=[
            custody_pb2.ContentPart(
                filename=p["filename"],
                media_type=p["media_type"],
                size_bytes=p["size_bytes"],
                digest=common_pb2.Digest(
                    algorithm=common_pb2.HASH_ALGORITHM_SHA256, value=bytes.fromhex(p["sha256"])
                ),
            )
            for p in mailing.parts
        ],
        deposit_time=timestamp(mailing.deposit_time),
        recipient_count=recipients,
        letter_count=letters,
        refused_count=len(view.recipients) - letters if view.recipients else 0,
        refusals=refusals,
        progress=custody_pb2.MailingProgress(
            awaiting_notification=states[LetterState.DEPOSITED],
            notified=states[LetterState.NOTIFIED],
            notification_failed=states[LetterState.NOTIFICATION_FAILED],
            accepted=states[LetterState.ACCEPTED],
            refused=states[LetterState.REFUSED],
            expired=states[LetterState.EXPIRED],
        ),
        recipients=[_mailing_recipient(r) for r in view.recipients] if with_recipients else [],
    )


def _tree_head(head: TreeHeadRecord) -> custody_pb2.TreeHead:
    return custody_pb2.TreeHead(
        tree_size=head.tree_size,
        root_hash=head.root_hash,
        timestamp=timestamp(head.timestamp),
        document=head.document,
        seal=head.seal,
    )


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
    ) -> None:
        self._deposits = deposits
        self._decisions = decisions
        self._mailings = mailings
        self._queries = queries
        self._identities = identities
        self._events = events
        self._bundles = bundles

    def DepositLetter(
        self,
        request_iterator: Iterator[custody_pb2.DepositLetterRequest],
        context: grpc.ServicerContext,
    ) -> custody_pb2.Letter:
        with domain_errors(context):
            session = session_of(context, self._identities)
            envelope, chunks = _envelope_then_chunks(request_iterator)
            letter, parts = self._deposits.deposit(
                session,
                envelope.request_id,
                parse_id(envelope.recipient, "envelope.recipient", "parties"),
                [DeclaredPart(p.filename, p.media_type, p.size_bytes) for p in envelope.parts],
                chunks,
            )
            return letter_message(letter, parts, uuid.UUID(session.party_id))

    def DepositMailing(
        self,
        request_iterator: Iterator[custody_pb2.DepositMailingRequest],
        context: grpc.ServicerContext,
    ) -> custody_pb2.Mailing:
        with domain_errors(context):
            session = session_of(context, self._identities)
            envelope, chunks = _envelope_then_chunks(request_iterator)
            view = self._mailings.deposit(
                session,
                envelope.request_id,
                envelope.reference,
                [(r.recipient, r.letter_reference) for r in envelope.recipients],
                [DeclaredPart(p.filename, p.media_type, p.size_bytes) for p in envelope.parts],
                chunks,
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
            lines = self._mailings.report(session, parse_id(request.name, "name", "mailings"))
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
                for offset in range(0, len(data), WIRE_CHUNK):
                    yield custody_pb2.ContentChunk(
                        part_index=part, data=data[offset : offset + WIRE_CHUNK]
                    )

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
                request.start_time.ToDatetime(dt.UTC) if request.HasField("start_time") else None,
                request.end_time.ToDatetime(dt.UTC) if request.HasField("end_time") else None,
                request.page_size,
                request.page_token,
            )
            return custody_pb2.ListChargesResponse(
                charges=[
                    custody_pb2.Charge(
                        name=f"charges/{c.id}",
                        sender=f"parties/{c.sender_id}",
                        letter=f"letters/{c.letter_id}",
                        amount_minor=c.amount_minor,
                        currency=c.currency,
                        create_time=timestamp(c.create_time),
                    )
                    for c in charges
                ],
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
            letter_id = parse_id(request.parent, "parent", "letters")
            if isinstance(reader, StaffReader):
                rows = self._queries.evidence_for_staff(reader, letter_id)
            else:
                rows = self._queries.evidence_for(reader, letter_id)
            return custody_pb2.ListEvidenceResponse(evidence=[_evidence(r) for r in rows])

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
            return _tree_head(self._events.head(request.tree_size or None))

    def SealTreeHead(
        self, request: custody_pb2.SealTreeHeadRequest, context: grpc.ServicerContext
    ) -> custody_pb2.TreeHead:
        with domain_errors(context):
            head = self._events.seal_head()
            if head is None:
                raise FailedPrecondition("the log is empty")
            return _tree_head(head)

    def GetInclusionProof(
        self, request: custody_pb2.GetInclusionProofRequest, context: grpc.ServicerContext
    ) -> custody_pb2.InclusionProof:
        with domain_errors(context):
            session = session_of(context, self._identities)
            letter_id, evidence_id = _evidence_name(request.evidence, "evidence")
            if not any(e.id == evidence_id for e in self._queries.evidence_for(session, letter_id)):
                raise NotFound("no such evidence")
            if request.tree_size < 0:
                raise InvalidArgument("tree_size", "0 (the latest) or a sealed size")
            entry, head, proof = self._events.inclusion(evidence_id, request.tree_size or None)
            assert entry.seq is not None
            return custody_pb2.InclusionProof(
                leaf_index=entry.seq, leaf=entry.leaf, hashes=proof, tree_head=_tree_head(head)
            )

    def GetConsistencyProof(
        self, request: custody_pb2.GetConsistencyProofRequest, context: grpc.ServicerContext
    ) -> custody_pb2.ConsistencyProof:
        with domain_errors(context):
            first, second, proof = self._events.consistency(
                request.first_tree_size, request.second_tree_size
            )
            return custody_pb2.ConsistencyProof(
                hashes=proof, first=_tree_head(first), second=_tree_head(second)
            )

    def GetEvidence(
        self, request: custody_pb2.GetEvidenceRequest, context: grpc.ServicerContext
    ) -> custody_pb2.Evidence:
        with domain_errors(context):
            reader = self._evidence_reader(context, "GetEvidence")
            letter_id, evidence_id = _evidence_name(request.name, "name")
            if isinstance(reader, StaffReader):
                (row,) = self._queries.evidence_for_staff(reader, letter_id, evidence_id)
                return _evidence(row)
            return _evidence(self._queries.evidence(reader, letter_id, evidence_id))

    def GetEvidenceProof(
        self, request: custody_pb2.GetEvidenceProofRequest, context: grpc.ServicerContext
    ) -> custody_pb2.EvidenceProof:
        with domain_errors(context):
            reader = self._evidence_reader(context, "GetEvidenceProof")
            letter_id, evidence_id = _evidence_name(request.name, "name")
            if isinstance(reader, StaffReader):
                pdf = self._queries.evidence_proof_for_staff(reader, letter_id, evidence_id)
            else:
                pdf = self._queries.evidence_proof(reader, letter_id, evidence_id)
            return custody_pb2.EvidenceProof(name=request.name, pdf=pdf)

    def GetEvidenceBundle(
        self, request: custody_pb2.GetEvidenceBundleRequest, context: grpc.ServicerContext
    ) -> Iterator[custody_pb2.EvidenceBundleChunk]:
        with domain_errors(context):
            reader = self._evidence_reader(context, "GetEvidenceBundle")
            letter_id, evidence_id = _evidence_name(request.name, "name")
            # Built whole before the first chunk: an error is a status, never a cut ZIP.
            bundle = self._bundles.bundle(reader, letter_id, evidence_id)
            for offset in range(0, len(bundle), WIRE_CHUNK):
                yield custody_pb2.EvidenceBundleChunk(data=bundle[offset : offset + WIRE_CHUNK])


def _envelope_then_chunks(messages: Iterator[Any]) -> tuple[Any, Iterator[tuple[int, bytes]]]:
    """A deposit stream (DepositLetter, DepositMailing): its envelope first,
    then (part_index, data) of each chunk, read lazily as the client sends."""
    first = next(messages, None)
    if first is None or first.WhichOneof("payload") != "envelope":
        raise InvalidArgument("envelope", "the first message carries the envelope")

    def chunks() -> Iterator[tuple[int, bytes]]:
        for message in messages:
            if message.WhichOneof("payload") != "chunk":
                raise InvalidArgument("chunk", "only the first message carries an envelope")
            yield message.chunk.part_index, message.chunk.data

    return first.envelope, chunks()
