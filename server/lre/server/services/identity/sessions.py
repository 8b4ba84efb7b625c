"""Sessions: opened with two factors, looked up by bearer token, revoked."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass

from lre.server.clock import utcnow
from lre.server.domain import journal
from lre.server.domain.errors import AuthenticationFailed
from lre.server.domain.identity import NO_SOURCE, FactorCategory, Session, Source
from lre.server.domain.log import LogKind
from lre.server.services.identity.credentials import CredentialService
from lre.server.services.identity.parties import journaled
from lre.server.services.identity.settings import Clock, IdentityPolicy
from lre.server.storage.store import Stores

INVALID = "invalid or expired session"


@dataclass(frozen=True)
class IssuedSession:
    token: str  # given once, to the caller; only its hash is kept
    session: Session


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def caller_hash(caller: str) -> bytes:
    """How a session names the caller that opened it ("" on a port without TLS)."""
    return hashlib.sha256(caller.encode()).digest()


class SessionService:
    def __init__(
        self,
        stores: Stores,
        policy: IdentityPolicy,
        credentials: CredentialService,
        clock: Clock = utcnow,
    ) -> None:
        self._stores = stores
        self._policy = policy
        self._credentials = credentials
        self._clock = clock

    def create(
        self,
        party_id: uuid.UUID,
        password: str,
        totp_code: str = "",
        email_code: tuple[uuid.UUID, str] | None = None,
        source: Source = NO_SOURCE,
        caller: str = "",
    ) -> IssuedSession:
        """Password (knowledge) and a one-time code, from the TOTP device or
        e-mailed (possession, one-time): a session bound to the party's current
        level and to ``caller``, the names of the client certificate that
        opened it (its token authenticates through that caller only).
        Failures count towards a lockout of ``source`` (who tried:
        lre.server.api.policy.source_of) or of its caller; a code is good once."""
        now = self._clock()
        with self._stores.begin() as store:
            level, failure = self._credentials.verify(
                store, party_id, password, totp_code, email_code, now, source
            )
            if level is not None:
                token = secrets.token_urlsafe(32)
                # A proofing that expired leaves a session that reads only
                # (its own letters and proofs): at the level it was proofed at.
                current = store.proofing.level(party_id, now)
                session = Session(
                    party_id=str(party_id),
                    level=current or level,
                    proofing_current=current is not None,
                    factors=frozenset({FactorCategory.KNOWLEDGE, FactorCategory.POSSESSION}),
                    one_time_element=True,
                    authenticated_at=now,
                    expires_at=now + self._policy.session_ttl,
                )
                store.sessions.add(token_hash(token), session, caller_hash(caller))
                journaled(
                    store,
                    LogKind.SESSION_CREATED,
                    party_id,
                    now,
                    sessionHmac=self._journal_name(token),
                    level=level.name.lower(),
                    oneTimeElement="email_code" if email_code else "totp",
                    expireTime=session.expires_at,
                    proofing=None if current else "expired",
                )
        # The failure is raised after the commit, so that it counts.
        if failure is not None:
            raise failure
        return IssuedSession(token, session)

    def authenticate(self, token: str, caller: str = "") -> Session:
        """The session behind a bearer token presented by ``caller``, as the
        domain sees it (read outside a transaction: every call of a portal
        does this). A token presented by another caller than the one that
        opened it is as unknown as a forged one."""
        with self._stores.peek() as store:
            session = store.sessions.live(token_hash(token), caller_hash(caller), self._clock())
        if session is None:
            raise AuthenticationFailed(INVALID)
        return session

    def revoke(self, token: str, caller: str = "") -> None:
        """Ends the session, through the caller that opened it only (through
        another, its token is as unknown as for any other call)."""
        now = self._clock()
        with self._stores.begin() as store:
            party_id = store.sessions.revoke(token_hash(token), caller_hash(caller), now)
            if party_id is None:
                raise AuthenticationFailed(INVALID)
            journaled(
                store, LogKind.SESSION_REVOKED, party_id, now, sessionHmac=self._journal_name(token)
            )

    def _journal_name(self, token: str) -> str:
        """How the journal names a session: its creation and revocation match,
        nobody can tell the token (nor its stored hash) from it."""
        return journal.keyed(self._policy.secrets_key.current, "session", token_hash(token))
