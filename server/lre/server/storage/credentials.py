"""Means of authentication and sessions: the SQL behind them."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy.orm import Session as DbSession

from lre.server.domain.identity import FactorCategory, Session
from lre.server.domain.letters import OutboxKind
from lre.server.storage import models
from lre.server.storage.outbox import new_message


@dataclass(frozen=True)
class Credential:
    """A party's factors and their counters (secrets hashed or encrypted)."""

    party_id: uuid.UUID
    password_hash: str | None = None
    totp_secret: bytes | None = None  # encrypted at rest
    totp_last_step: int | None = None
    failed_attempts: int = 0
    locked_until: dt.datetime | None = None
    email_code_id: uuid.UUID | None = None
    email_code_hmac: bytes | None = None
    email_code_sent_time: dt.datetime | None = None
    email_code_expire_time: dt.datetime | None = None
    enrolment_code_hmac: bytes | None = None
    enrolment_code_expire_time: dt.datetime | None = None

    def locked(self, now: dt.datetime) -> bool:
        return self.locked_until is not None and self.locked_until > now


_FIELDS = [f.name for f in dataclasses.fields(Credential)]


@dataclass(frozen=True)
class Throttle:
    """The failures of one source against one party (models.AuthThrottle)."""

    party_id: uuid.UUID
    source: str
    failed_attempts: int = 0
    lockouts: int = 0
    locked_until: dt.datetime | None = None

    def locked(self, now: dt.datetime) -> bool:
        return self.locked_until is not None and self.locked_until > now


class CredentialRepository:
    def __init__(self, db: DbSession) -> None:
        self._db = db

    def get(self, party_id: uuid.UUID, lock: bool = False) -> Credential:
        """The party's credential (empty if it has none yet); ``lock`` holds
        the row until the transaction ends, so that counters do not race."""
        query = select(models.Credential).where(models.Credential.party_id == party_id)
        row = self._db.scalar(query.with_for_update() if lock else query)
        if row is None:
            return Credential(party_id)
        return Credential(**{name: getattr(row, name) for name in _FIELDS})

    def save(self, credential: Credential) -> None:
        row = self._db.get(models.Credential, credential.party_id)
        if row is None:
            row = models.Credential(party_id=credential.party_id)
            self._db.add(row)
        for name in _FIELDS:
            setattr(row, name, getattr(credential, name))

    def throttle(self, party_id: uuid.UUID, source: str) -> Throttle:
        """The source's failures against the party, locked until the transaction ends."""
        row = self._db.scalar(
            select(models.AuthThrottle)
            .where(models.AuthThrottle.party_id == party_id, models.AuthThrottle.source == source)
            .with_for_update()
        )
        if row is None:
            return Throttle(party_id, source)
        return Throttle(party_id, source, row.failed_attempts, row.lockouts, row.locked_until)

    def save_throttle(self, throttle: Throttle, now: dt.datetime) -> None:
        self._db.merge(
            models.AuthThrottle(
                party_id=throttle.party_id,
                source=throttle.source,
                failed_attempts=throttle.failed_attempts,
                lockouts=throttle.lockouts,
                locked_until=throttle.locked_until,
                update_time=now,
            )
        )

    def clear_throttle(self, party_id: uuid.UUID, source: str) -> None:
        self._db.execute(
            delete(models.AuthThrottle).where(
                models.AuthThrottle.party_id == party_id, models.AuthThrottle.source == source
            )
        )

    def enqueue_mail(self, kind: OutboxKind, payload: dict[str, str], now: dt.datetime) -> None:
        """A message for the outbox, sent after this transaction commits."""
        self._db.execute(
            insert(models.OutboxMessage.__table__),  # type: ignore[arg-type]
            [new_message(None, kind, payload, now, now)],
        )


class SessionRepository:
    """Sessions by the hash of their bearer token (the token itself is never stored)."""

    def __init__(self, db: DbSession | Connection) -> None:
        self._db = db

    def add(self, token_hash: bytes, session: Session) -> None:
        values: dict[str, Any] = {
            "id": uuid.uuid4(),
            "party_id": uuid.UUID(session.party_id),
            "token_hash": token_hash,
            "level": session.level,
            "factors": sorted(f.value for f in session.factors),
            "one_time_element": session.one_time_element,
            "authenticated_at": session.authenticated_at,
            "expire_time": session.expires_at,
            "revoke_time": None,
        }
        self._db.execute(insert(models.AuthSession.__table__), [values])  # type: ignore[arg-type]

    def live(self, token_hash: bytes, now: dt.datetime) -> Session | None:
        """The session if it exists, is not revoked and has not expired."""
        s = models.AuthSession
        row = self._db.execute(
            select(
                s.party_id,
                s.level,
                s.factors,
                s.one_time_element,
                s.authenticated_at,
                s.expire_time,
                s.revoke_time,
            ).where(s.token_hash == token_hash)
        ).first()
        if row is None or row.revoke_time is not None or row.expire_time <= now:
            return None
        return Session(
            party_id=str(row.party_id),
            level=row.level,
            factors=frozenset(FactorCategory(f) for f in row.factors),
            one_time_element=row.one_time_element,
            authenticated_at=row.authenticated_at,
            expires_at=row.expire_time,
        )

    def revoke_all(self, party_id: uuid.UUID, now: dt.datetime) -> None:
        s = models.AuthSession
        self._db.execute(
            update(s).where(s.party_id == party_id, s.revoke_time.is_(None)).values(revoke_time=now)
        )

    def revoke(self, token_hash: bytes, now: dt.datetime) -> uuid.UUID | None:
        """The session's party; None when there is no such session."""
        assert isinstance(self._db, DbSession)
        row = self._db.scalar(
            select(models.AuthSession).where(models.AuthSession.token_hash == token_hash)
        )
        if row is None:
            return None
        if row.revoke_time is None:
            row.revoke_time = now
        return row.party_id
