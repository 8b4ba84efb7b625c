"""Identity use cases, one module per concern: parties, proofing (with the
X.509 and eID checks in verification), credentials, sessions, consent.

Each call is one transaction; repositories in lre.server.storage own the SQL
and hand back the records of lre.server.domain.identity; the rules come from
lre.server.domain.identity.
"""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session as DbSession
from sqlalchemy.orm import sessionmaker

from lre.server.clock import utcnow
from lre.server.domain import identity
from lre.server.services.identity.consent import ConsentService, has_consent_in
from lre.server.services.identity.credentials import CredentialService
from lre.server.services.identity.parties import NewParty, PartyService
from lre.server.services.identity.proofing import ProofingService
from lre.server.services.identity.sessions import IssuedSession, SessionService
from lre.server.services.identity.settings import Clock, EidBroker, IdentityPolicy

__all__ = [
    "EidBroker",
    "IdentityPolicy",
    "IdentityService",
    "IssuedSession",
    "NewParty",
]


class IdentityService:
    """The identity services over one database, and the two questions the
    rest of the server asks them: who holds this session token, and has this
    recipient consented to this sender."""

    def __init__(
        self, sessions: sessionmaker[DbSession], policy: IdentityPolicy, clock: Clock = utcnow
    ) -> None:
        self.parties = PartyService(sessions, policy.secrets_key.current, clock)
        self.credentials = CredentialService(sessions, policy, clock)
        self.proofing = ProofingService(
            sessions, policy, self.credentials.send_enrolment_code, clock
        )
        self.sessions = SessionService(sessions, policy, self.credentials, clock)
        self.consents = ConsentService(sessions, policy.secrets_key.current, clock)

    def authenticate(self, token: str) -> identity.Session:
        return self.sessions.authenticate(token)

    @staticmethod
    def has_consent_in(db: DbSession, recipient_id: uuid.UUID, sender_id: uuid.UUID) -> bool:
        """Inside the deposit's transaction."""
        return has_consent_in(db, recipient_id, sender_id)
