"""Vocabulary of a registered letter's life (CPCE R53-1 to R53-3, ETSI EN 319 522)."""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass

from lre.server.domain.errors import AcceptanceWindowClosed, InvalidTransition
from lre.server.domain.window import AcceptanceWindow

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
        """Nothing more happens to the letter: accept, refuse and non-claim are
        final and exclude each other (CPCE R53-3); a refused deposit never
        entered custody; a failed notification ends the delivery attempt (no
        window opens, so there is nothing left to decide). Content retention
        counts from these states."""
        return not TRANSITIONS[self]


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
    # Accepted by our mail server, then returned by the recipient's.
    BOUNCED = "bounced"
    # Claimed by a dispatcher, being handed to the mail server until ``claimed_until``.
    SENDING = "sending"


class OutboxKind(enum.StrEnum):
    """What an outbox message is; stored as these strings."""

    # The recipient's notice that a letter waits (R53-3 I), then its reminders.
    LETTER_WAITING = "letter_waiting"
    REMINDER = "reminder"
    # The sender's copy of a proof (an evidence and its seal).
    PROOF = "proof"
    # A one-time sign-in code.
    EMAIL_CODE = "email_code"

    @property
    def to_recipient(self) -> bool:
        """Messages about a letter that go to its recipient (and that the recipient may list)."""
        return self in (OutboxKind.LETTER_WAITING, OutboxKind.REMINDER)


def sender_visible_to_recipient(state: LetterState) -> bool:
    """The recipient is not told who the sender is until acceptance (R53-3 I)."""
    return state is LetterState.ACCEPTED


def known_to_recipient(state: LetterState) -> bool:
    """A deposit refused at the door never entered custody: its recipient
    was never notified, and is not shown it."""
    return state is not LetterState.REJECTED


# What each state may become. ACCEPTED, REFUSED and EXPIRED exclude each other
# (CPCE R53-3); REJECTED letters never entered custody; a notification that
# could not be delivered ends the letter's delivery attempt.
TRANSITIONS: dict[LetterState, frozenset[LetterState]] = {
    LetterState.DEPOSITED: frozenset({LetterState.NOTIFIED, LetterState.NOTIFICATION_FAILED}),
    # A notice our mail server accepted may still bounce: it never reached the
    # recipient, so the delivery attempt fails unless they have answered already.
    LetterState.NOTIFIED: frozenset(
        {
            LetterState.ACCEPTED,
            LetterState.REFUSED,
            LetterState.EXPIRED,
            LetterState.NOTIFICATION_FAILED,
        }
    ),
    LetterState.NOTIFICATION_FAILED: frozenset(),
    LetterState.ACCEPTED: frozenset(),
    LetterState.REFUSED: frozenset(),
    LetterState.EXPIRED: frozenset(),
    LetterState.REJECTED: frozenset(),
}


@dataclass(frozen=True)
class Outcome:
    """A state change and the evidence that proves it."""

    state: LetterState
    event: EvidenceEvent
    event_time: dt.datetime


@dataclass
class Letter:
    """A letter's lifecycle. Methods check the law and return the outcome to
    record; they never touch storage, so a caller commits state and evidence
    together or not at all."""

    state: LetterState
    deposit_time: dt.datetime
    notification_time: dt.datetime | None = None
    decision_time: dt.datetime | None = None

    @property
    def window(self) -> AcceptanceWindow | None:
        if self.notification_time is None:
            return None
        return AcceptanceWindow(self.notification_time)

    @property
    def content_available_to_recipient(self) -> bool:
        # After non-claim the content is no longer available (CPCE R53-3).
        return self.state is LetterState.ACCEPTED

    @property
    def sender_visible_to_recipient(self) -> bool:
        return sender_visible_to_recipient(self.state)

    def _move(self, to: LetterState, event: EvidenceEvent, at: dt.datetime) -> Outcome:
        if to not in TRANSITIONS[self.state]:
            raise InvalidTransition(f"a letter {self.state.value} cannot become {to.value}")
        self.state = to
        return Outcome(to, event, at)

    def notify(self, at: dt.datetime) -> Outcome:
        outcome = self._move(LetterState.NOTIFIED, EvidenceEvent.NOTIFICATION_FOR_ACCEPTANCE, at)
        self.notification_time = at
        return outcome

    def fail_notification(self, at: dt.datetime) -> Outcome:
        return self._move(
            LetterState.NOTIFICATION_FAILED, EvidenceEvent.NOTIFICATION_FOR_ACCEPTANCE_FAILURE, at
        )

    def _decide(self, to: LetterState, event: EvidenceEvent, at: dt.datetime) -> Outcome:
        window = self.window
        if self.state is LetterState.NOTIFIED and window is not None and not window.is_open(at):
            raise AcceptanceWindowClosed("the 15-day acceptance window is closed")
        outcome = self._move(to, event, at)
        self.decision_time = at
        return outcome

    def accept(self, at: dt.datetime) -> Outcome:
        return self._decide(LetterState.ACCEPTED, EvidenceEvent.CONSIGNMENT_ACCEPTANCE, at)

    def refuse(self, at: dt.datetime) -> Outcome:
        return self._decide(LetterState.REFUSED, EvidenceEvent.CONSIGNMENT_REJECTION, at)

    def expire(self, now: dt.datetime) -> Outcome:
        """Non-claim; its event time is the end of the window, not the sweep."""
        window = self.window
        if self.state is LetterState.NOTIFIED and window is not None and window.is_open(now):
            raise InvalidTransition("the acceptance window is still open")
        if window is None:
            raise InvalidTransition(f"a letter {self.state.value} has no acceptance window")
        outcome = self._move(
            LetterState.EXPIRED, EvidenceEvent.ACCEPTANCE_REJECTION_EXPIRY, window.closes_at
        )
        self.decision_time = window.closes_at
        return outcome

    def hand_over_content(self, at: dt.datetime) -> Outcome:
        if not self.content_available_to_recipient:
            raise InvalidTransition(f"the content of a letter {self.state.value} is not available")
        return Outcome(self.state, EvidenceEvent.CONTENT_HANDOVER, at)
