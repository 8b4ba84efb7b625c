"""Conversions between the domain's records and protobuf messages, shared by
the servicers."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable

from google.protobuf import timestamp_pb2

from lre.server.domain.errors import InvalidArgument
from lre.server.domain.letters import EvidenceEvent, LetterState
from lre.server.domain.mailings import MailingRecipientRecord
from lre.server.domain.records import (
    ChargeRecord,
    EvidenceRecord,
    LetterRecord,
    PartRecord,
    TreeHeadRecord,
)
from lre.server.services.custody import DeclaredPart, MailingView
from lre.v1 import common_pb2, custody_pb2

# What a google.protobuf.Timestamp may hold: 0001-01-01T00:00:00Z to
# 9999-12-31T23:59:59.999999999Z (its definition); beyond, the conversion
# itself fails.
_FIRST_SECOND, _LAST_SECOND = -62_135_596_800, 253_402_300_799


def request_time(stamp: timestamp_pb2.Timestamp, field: str) -> dt.datetime:
    """A request's time, aware, in UTC; InvalidArgument naming ``field`` when
    it is outside what a Timestamp may hold."""
    if not (_FIRST_SECOND <= stamp.seconds <= _LAST_SECOND and 0 <= stamp.nanos < 10**9):
        raise InvalidArgument(field, "must be a time from year 1 to year 9999 (RFC 3339)")
    return stamp.ToDatetime(dt.UTC)


def declared_parts(parts: Iterable[custody_pb2.ContentPart]) -> list[DeclaredPart]:
    """An envelope's parts as declared; a digest, where given, must be a
    SHA-256 (the one the service computes and checks the content against)."""
    declared = []
    for i, part in enumerate(parts):
        sha256 = None
        if part.HasField("digest"):
            digest = part.digest
            if digest.algorithm != common_pb2.HASH_ALGORITHM_SHA256 or len(digest.value) != 32:
                raise InvalidArgument(
                    f"envelope.parts[{i}].digest",
                    "HASH_ALGORITHM_SHA256 and its 32 bytes, or no digest",
                )
            sha256 = digest.value
        declared.append(DeclaredPart(part.filename, part.media_type, part.size_bytes, sha256))
    return declared


def timestamp(value: dt.datetime | None) -> timestamp_pb2.Timestamp | None:
    if value is None:
        return None
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value)
    return stamp


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


def evidence_message(row: EvidenceRecord, name: str | None = None) -> custody_pb2.Evidence:
    return custody_pb2.Evidence(
        name=name or f"letters/{row.letter_id}/evidence/{row.id}",
        event=EVENTS[row.event],
        event_time=timestamp(row.event_time),
        document=row.document,
        seal=row.seal,
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
                # By name only: GetEvidence gives it sealed, GetEvidenceProof as a PDF.
                evidence=custody_pb2.Evidence(
                    name=f"mailings/{r.mailing_id}/recipients/{r.position}/evidence/{r.evidence_id}",
                    event=common_pb2.EVIDENCE_EVENT_SUBMISSION_REJECTION,
                    event_time=timestamp(r.evidence_time),
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


def tree_head_message(head: TreeHeadRecord) -> custody_pb2.TreeHead:
    return custody_pb2.TreeHead(
        tree_size=head.tree_size,
        root_hash=head.root_hash,
        timestamp=timestamp(head.timestamp),
        document=head.document,
        seal=head.seal,
    )


def charge_message(charge: ChargeRecord) -> custody_pb2.Charge:
    return custody_pb2.Charge(
        name=f"charges/{charge.id}",
        sender=f"parties/{charge.sender_id}",
        letter=f"letters/{charge.letter_id}",
        amount_minor=charge.amount_minor,
        currency=charge.currency,
        create_time=timestamp(charge.create_time),
    )
