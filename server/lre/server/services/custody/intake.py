"""The intake every deposit goes through, a single letter's or a mailing's:
the envelope and the sender checked, the letters made, and, in the deposit's
transaction, what every accepted letter writes: its parts, its sealed proof
of deposit (SubmissionAcceptance, with its log entry and the sender's copy),
the notice to its recipient and its charge. A retry is compared with the
first deposit of its request_id here too."""

from __future__ import annotations

import datetime as dt
import re
import secrets
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client import Counter

from lre.server.domain import identity
from lre.server.domain.errors import DepositRefused, InvalidArgument, RequestConflict
from lre.server.domain.evidence import Delegate, PartDigest, PartyDetails
from lre.server.domain.letters import EvidenceEvent, LetterState, OutboxKind
from lre.server.domain.records import ChargeRecord, EvidenceRecord, LetterRecord, PartRecord
from lre.server.services.custody.evidence import EvidenceRecorder
from lre.server.services.custody.policy import CustodyPolicy
from lre.server.storage.outbox import new_message
from lre.server.storage.store import Store

DEPOSITS = Counter("lre_letters_deposited", "Deposits, by outcome.", ["outcome"])
for _outcome in ("accepted", "rejected"):
    DEPOSITS.labels(_outcome)

MAX_PARTS = 100
# RFC 6838 4.2 names, as proofs print them: "type/subtype", and parameters.
_NAME = r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*"
_MEDIA_TYPE = re.compile(rf'{_NAME}/{_NAME}(\s*;\s*{_NAME}=({_NAME}|"[^"\\]*"))*')
REFERENCE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


@dataclass(frozen=True)
class DeclaredPart:
    filename: str
    media_type: str
    size_bytes: int
    # The SHA-256 the sender computed, if it gave one: the content must match.
    sha256: bytes | None = None


def check_envelope(request_id: str, parts: list[DeclaredPart]) -> None:
    if not request_id or len(request_id) > 128:
        raise InvalidArgument("envelope.request_id", "required, at most 128 characters")
    if not 0 < len(parts) <= MAX_PARTS:
        raise InvalidArgument("envelope.parts", f"declare 1 to {MAX_PARTS} parts")
    for i, part in enumerate(parts):
        if (
            not part.filename
            or len(part.filename) > 255
            or "/" in part.filename
            or "\\" in part.filename
        ):
            raise InvalidArgument(
                f"envelope.parts[{i}].filename", "a file name without a path, at most 255"
            )
        if len(part.media_type) > 127 or not _MEDIA_TYPE.fullmatch(part.media_type):
            raise InvalidArgument(
                f"envelope.parts[{i}].media_type",
                "a media type (RFC 6838: type/subtype, parameters after ';'), at most 127",
            )
        if part.size_bytes < 0:
            raise InvalidArgument(f"envelope.parts[{i}].size_bytes", "must not be negative")


def check_declared_digests(parts: list[DeclaredPart], digests: list[bytes]) -> None:
    """The content read is what the sender declared, part by part, where it
    declared a digest; InvalidArgument naming the first part that differs
    (the caller then stores nothing)."""
    for i, (part, digest) in enumerate(zip(parts, digests, strict=True)):
        if part.sha256 is not None and part.sha256 != digest:
            raise InvalidArgument(
                f"envelope.parts[{i}].digest", "the content sent does not match this digest"
            )


def new_letter(
    letter_id: uuid.UUID,
    wrapped_key: bytes | None,
    sender_id: uuid.UUID,
    recipient_id: uuid.UUID,
    request_id: str,
    deposit_time: dt.datetime,
    state: LetterState,
    mailing_id: uuid.UUID | None = None,
    content_object: tuple[str, bytes] | None = None,
) -> LetterRecord:
    """``content_object``: the object store's key of its content and the
    object's SHA-256 (None: in the database)."""
    return LetterRecord(
        id=letter_id,
        reference="".join(secrets.choice(REFERENCE_ALPHABET) for _ in range(12)),
        sender_id=sender_id,
        recipient_id=recipient_id,
        request_id=request_id,
        state=state,
        deposit_time=deposit_time,
        wrapped_key=wrapped_key,
        mailing_id=mailing_id,
        content_object=content_object[0] if content_object else None,
        content_digest=content_object[1] if content_object else None,
    )


def check_same_content(
    stored: Sequence[tuple[str, str, int, bytes]],
    parts: list[DeclaredPart],
    digests: Callable[[], list[bytes]],
    what: str,
) -> None:
    """A retry declares the parts the first deposit stored ((filename, media
    type, size, SHA-256) each) and sends their content, or RequestConflict
    names what differs. ``digests``: the retry's content, read only when it
    is to be compared; ``what``: "letter" or "mailing"."""
    if [p[:3] for p in stored] != [(p.filename, p.media_type, p.size_bytes) for p in parts]:
        raise RequestConflict(
            "envelope.parts", f"this request_id was used for a {what} with other parts"
        )
    for i, (part, digest) in enumerate(zip(stored, digests(), strict=True)):
        if part[3] != digest:
            raise RequestConflict(
                f"envelope.parts[{i}]", "this request_id was used for other content"
            )


def check_same_delegate(submission: dict[str, Any], delegate: Delegate | None) -> None:
    """A retry names the sender's delegate the first deposit's evidence
    (``submission``, its SubmissionAcceptance or SubmissionRejection) named,
    or none if it named none; else RequestConflict."""
    if submission.get("sender", {}).get("delegate") != (delegate.to_dict() if delegate else None):
        raise RequestConflict(
            "envelope.sender_delegate", "this request_id was used with another sender delegate"
        )


class Intake:
    def __init__(self, evidence: EvidenceRecorder, policy: CustodyPolicy) -> None:
        self._evidence = evidence
        self._policy = policy

    def check_sender(self, session: identity.Session, now: dt.datetime) -> None:
        """A sender identified enough to deposit (AuthenticationRequired otherwise)."""
        identity.require_sender(session, now, self._policy.sender_min_level)

    def check_size(self, parts: list[DeclaredPart]) -> None:
        """Every part has content, the letter is within the provider's limit."""
        total = sum(p.size_bytes for p in parts)
        if total == 0 or any(p.size_bytes == 0 for p in parts):
            raise DepositRefused("content_empty", "every part must have content", "envelope.parts")
        if total > self._policy.max_letter_bytes:
            raise DepositRefused(
                "content_too_large",
                f"the letter exceeds {self._policy.max_letter_bytes} bytes",
                "envelope.parts",
            )

    def accept(
        self,
        store: Store,
        session: identity.Session,
        sender: PartyDetails,
        letters: Sequence[tuple[LetterRecord, PartyDetails]],
        parts: list[DeclaredPart],
        digests: list[bytes],
        seal_with: Sequence[EvidenceRecord] = (),
    ) -> tuple[list[PartRecord], list[EvidenceRecord]]:
        """Accepted letters (each with its recipient), in the deposit's
        transaction, their rows and content already written: each letter's
        parts, its sealed SubmissionAcceptance, the notice to its recipient
        and its charge, dated at its deposit time. ``seal_with``: other
        evidence to seal in the same call to the signer (a mailing's
        refusals). Returns the letters' parts, and ``seal_with`` sealed."""
        written = [
            PartRecord(letter.id, i, p.filename, p.media_type, p.size_bytes, digest)
            for letter, _ in letters
            for i, (p, digest) in enumerate(zip(parts, digests, strict=True))
        ]
        part_digests = tuple(
            PartDigest(p.filename, p.media_type, p.size_bytes, digest.hex())
            for p, digest in zip(parts, digests, strict=True)
        )
        sealed = self._evidence.seal_many(
            [
                *(
                    self._evidence.document(
                        letter,
                        EvidenceEvent.SUBMISSION_ACCEPTANCE,
                        sender,
                        recipient,
                        part_digests,
                        letter.deposit_time,
                        sender_session=session,
                    )
                    for letter, recipient in letters
                ),
                *seal_with,
            ]
        )
        store.letters.add_parts(written)
        self._evidence.write(
            store,
            ((letter.state, e) for (letter, _), e in zip(letters, sealed, strict=False)),
            (
                new_message(
                    letter.id,
                    OutboxKind.LETTER_WAITING,
                    {"letter": f"letters/{letter.id}"},
                    letter.deposit_time,
                    letter.deposit_time,
                )
                for letter, _ in letters
            ),
        )
        store.charges.add(
            ChargeRecord(
                uuid.uuid4(),
                letter.sender_id,
                letter.id,
                self._policy.tariff_minor,
                self._policy.currency,
                letter.deposit_time,
            )
            for letter, _ in letters
        )
        return written, sealed[len(letters) :]
