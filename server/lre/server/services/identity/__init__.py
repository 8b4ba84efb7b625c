"""Identity use cases, one module per concern: parties, proofing (with the
X.509 and eID checks in verification), credentials, sessions, consent.

Each call is one transaction; repositories in lre.server.storage own the SQL
and hand back the records of lre.server.domain.identity; the rules come from
lre.server.domain.identity.
"""

from __future__ import annotations

from lre.server.clock import utcnow
from lre.server.domain import identity
from lre.server.services.identity.consent import ConsentService
from lre.server.services.identity.credentials import CredentialService
from lre.server.services.identity.lockouts import UnlockService
from lre.server.services.identity.parties import NewParty, PartyService, ProfessionalDecision
from lre.server.services.identity.proofing import ProofingService
from lre.server.services.identity.sessions import IssuedSession, SessionService
from lre.server.services.identity.settings import Clock, EidBroker, IdentityPolicy
from lre.server.storage.store import Stores

__all__ = [
    "EidBroker",
    "IdentityPolicy",
    "IdentityService",
    "IssuedSession",
    "NewParty",
    "ProfessionalDecision",
]


class IdentityService:
    """The identity services over one database, and the question the rest
    of the server asks them: who holds this session token. (Whether a
    recipient consented, a deposit asks its own transaction's store.)"""

    def __init__(self, stores: Stores, policy: IdentityPolicy, clock: Clock = utcnow) -> None:
        self.parties = PartyService(stores, policy.secrets_key.current, clock)
        self.credentials = CredentialService(stores, policy, clock)
        self.proofing = ProofingService(stores, policy, self.credentials.send_enrolment_code, clock)
        self.sessions = SessionService(stores, policy, self.credentials, clock)
        self.unlocks = UnlockService(stores, policy, clock)
        self.consents = ConsentService(stores, policy.secrets_key.current, clock)

    def authenticate(self, token: str, caller: str = "") -> identity.Session:
        return self.sessions.authenticate(token, caller)
