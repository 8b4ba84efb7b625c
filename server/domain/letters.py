"""Vocabulary of a registered letter's life (CPCE R53-1 to R53-3, ETSI EN 319 522)."""

from __future__ import annotations

import enum

ETSI_EVENT_URI = "http://uri.etsi.org/19522/Event/"


class LetterState(enum.Enum):
    REJECTED = "rejected"
    DEPOSITED = "deposited"
    NOTIFIED = "notified"
    NOTIFICATION_FAILED = "notification_failed"
    ACCEPTED = "accepted"
    REFUSED = "refused"
    EXPIRED = "expired"

    @property
    def final(self) -> bool:
        """Accept, refuse and non-claim are final and exclude each other."""
        return self in (
            LetterState.ACCEPTED,
            LetterState.REFUSED,
            LetterState.EXPIRED,
            LetterState.REJECTED,
        )


class EvidenceEvent(enum.Enum):
    SUBMISSION_ACCEPTANCE = "SubmissionAcceptance"
    SUBMISSION_REJECTION = "SubmissionRejection"
    NOTIFICATION_FOR_ACCEPTANCE = "NotificationForAcceptance"
    NOTIFICATION_FOR_ACCEPTANCE_FAILURE = "NotificationForAcceptanceFailure"
    CONSIGNMENT_ACCEPTANCE = "ConsignmentAcceptance"
    CONTENT_HANDOVER = "ContentHandover"
    CONSIGNMENT_REJECTION = "ConsignmentRejection"
    ACCEPTANCE_REJECTION_EXPIRY = "AcceptanceRejectionExpiry"

    @property
    def uri(self) -> str:
        return ETSI_EVENT_URI + self.value


class PartyKind(enum.Enum):
    NATURAL_PERSON = "natural_person"
    LEGAL_PERSON = "legal_person"


class OutboxState(enum.Enum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"
