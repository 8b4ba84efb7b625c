"""A recipient's consent to receive registered letters electronically from a
sender (CPCE L100): granted, withdrawn, listed, and checked at deposit."""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session as DbSession
from sqlalchemy.orm import sessionmaker

from lre.server.clock import utcnow
from lre.server.domain.errors import InvalidArgument, NotFound
from lre.server.domain.identity import Consent
from lre.server.services.identity.parties import check_request_id, fingerprint, idempotent
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
        self,
        scope: str,
        request_id: str,
        recipient_id: uuid.UUID,
        sender_id: uuid.UUID,
        method: str,
    ) -> Consent:
        """``scope`` is the caller the idempotency key belongs to."""
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
            consents.add(consent, scope, request_id, request_hash)
            return consent

        request_hash = fingerprint(str(recipient_id), str(sender_id), method)
        return idempotent(
            self._sessions,
            request_hash,
            lambda db: ConsentRepository(db).by_request(scope, request_id),
            create,
        )

    def withdraw(self, recipient_id: uuid.UUID, consent_id: uuid.UUID) -> Consent:
        """The recipient's consent, withdrawn; another party's is not found."""
        with self._sessions.begin() as db:
            consents = ConsentRepository(db)
            consent = consents.get(consent_id)
            if consent is None or consent.recipient_id != recipient_id:
                raise NotFound("no such consent")
            withdrawn = consents.withdraw(consent_id, self._clock())
            assert withdrawn is not None
        return withdrawn

    def list(
        self, recipient_id: uuid.UUID, page_size: int, page_token: str
    ) -> tuple[list[Consent], str]:
        with self._sessions() as db:
            return ConsentRepository(db).page(recipient_id, page_size, page_token)

    def has(self, recipient_id: uuid.UUID, sender_id: uuid.UUID) -> bool:
        with self._sessions() as db:
            return has_consent_in(db, recipient_id, sender_id)
