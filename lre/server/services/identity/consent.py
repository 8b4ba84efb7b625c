"""A recipient's consent to receive registered letters electronically from a
sender (CPCE L100): granted, withdrawn, listed, and checked at deposit."""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session as DbSession
from sqlalchemy.orm import sessionmaker

from lre.server.clock import utcnow
from lre.server.domain.errors import InvalidArgument, NotFound
from lre.server.domain.identity import Consent
from lre.server.services.identity.parties import check_request_id, idempotent
from lre.server.services.identity.settings import Clock
from lre.server.storage.parties import ConsentRepository, PartyRepository


def has_consent_in(db: DbSession, recipient_id: uuid.UUID, sender_id: uuid.UUID) -> bool:
    """Inside the caller's transaction, as a deposit needs it."""
    return ConsentRepository(db).active(recipient_id, sender_id) is not None


class ConsentService:
    def __init__(self, sessions: sessionmaker[DbSession], clock: Clock = utcnow) -> None:
        self._sessions = sessions
        self._clock = clock

    def grant(
        self, request_id: str, recipient_id: uuid.UUID, sender_id: uuid.UUID, method: str
    ) -> Consent:
        check_request_id(request_id)
        if not method or len(method) > 64:
            raise InvalidArgument(
                "method", "required: how the consent was given, at most 64 characters"
            )
        if recipient_id == sender_id:
            raise InvalidArgument("sender", "must differ from the recipient")

        def create(db: DbSession) -> Consent:
            parties, consents = PartyRepository(db), ConsentRepository(db)
            for party, field in ((recipient_id, "recipient"), (sender_id, "sender")):
                if not parties.exists(party):
                    raise NotFound(f"no such party ({field})")
            active = consents.active(recipient_id, sender_id)
            if active is not None:
                return active
            consent = Consent(
                id=uuid.uuid4(),
                recipient_id=recipient_id,
                sender_id=sender_id,
                method=method,
                grant_time=self._clock(),
                withdraw_time=None,
            )
            consents.add(consent, request_id)
            return consent

        return idempotent(
            self._sessions, lambda db: ConsentRepository(db).by_request_id(request_id), create
        )

    def withdraw(self, consent_id: uuid.UUID) -> Consent:
        with self._sessions.begin() as db:
            consent = ConsentRepository(db).withdraw(consent_id, self._clock())
        if consent is None:
            raise NotFound("no such consent")
        return consent

    def list(
        self, recipient_id: uuid.UUID, page_size: int, page_token: str
    ) -> tuple[list[Consent], str]:
        with self._sessions() as db:
            return ConsentRepository(db).page(recipient_id, page_size, page_token)

    def has(self, recipient_id: uuid.UUID, sender_id: uuid.UUID) -> bool:
        with self._sessions() as db:
            return has_consent_in(db, recipient_id, sender_id)
