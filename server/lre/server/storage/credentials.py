"""Means of authentication and sessions: the SQL behind them."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import delete, insert, select, update

from lre.server.domain.identity import Credential, FactorCategory, Session, Throttle
from lre.server.storage import models
from lre.server.storage.records import Db, from_row, table, to_row

CREDENTIALS = table(models.Credential)
SESSIONS = table(models.AuthSession)
THROTTLES = table(models.AuthThrottle)


class CredentialRepository:
    def __init__(self, db: Db) -> None:
        self._db = db

    def get(self, party_id: uuid.UUID, lock: bool = False) -> Credential:
        """The party's credential (empty if it has none yet); ``lock`` holds
        the row until the transaction ends, so that counters do not race."""
        query = select(CREDENTIALS).where(CREDENTIALS.c.party_id == party_id)
        row = self._db.execute(query.with_for_update() if lock else query).one_or_none()
        return Credential(party_id) if row is None else from_row(Credential, row)

    def save(self, credential: Credential) -> None:
        row = to_row(credential)
        changed = self._db.execute(
            update(CREDENTIALS).where(CREDENTIALS.c.party_id == credential.party_id).values(row)
        )
        if not changed.rowcount:  # type: ignore[attr-defined]
            self._db.execute(insert(CREDENTIALS), [row])

    def throttle(self, party_id: uuid.UUID, source: str) -> Throttle:
        """The source's failures against the party, the row locked until the
        transaction ends (a source that has none yet has the defaults)."""
        t = THROTTLES.c
        row = self._db.execute(
            select(THROTTLES).where(t.party_id == party_id, t.source == source).with_for_update()
        ).one_or_none()
        return Throttle(party_id, source) if row is None else from_row(Throttle, row)

    def save_throttle(self, throttle: Throttle, now: dt.datetime) -> None:
        row = {**to_row(throttle), "update_time": now}
        t = THROTTLES.c
        changed = self._db.execute(
            update(THROTTLES)
            .where(t.party_id == throttle.party_id, t.source == throttle.source)
            .values(row)
        )
        if not changed.rowcount:  # type: ignore[attr-defined]
            self._db.execute(insert(THROTTLES), [row])

    def clear_throttle(self, party_id: uuid.UUID, source: str) -> None:
        """Forgets the source's failures against the party (after a success)."""
        t = THROTTLES.c
        self._db.execute(delete(THROTTLES).where(t.party_id == party_id, t.source == source))


def _session(row: Any) -> Session:
    """A session as the domain sees it. The one row not mapped by name: the
    domain names a party by its resource id and the factors as a set."""
    return Session(
        party_id=str(row.party_id),
        level=row.level,
        factors=frozenset(FactorCategory(f) for f in row.factors),
        one_time_element=row.one_time_element,
        authenticated_at=row.authenticated_at,
        expires_at=row.expire_time,
        proofing_current=row.proofing_current,
    )


class SessionRepository:
    """Sessions by the hash of their bearer token (the token itself is never stored)."""

    def __init__(self, db: Db) -> None:
        self._db = db

    def add(self, token_hash: bytes, session: Session, caller_hash: bytes) -> None:
        values: dict[str, Any] = {
            "id": uuid.uuid4(),
            "party_id": uuid.UUID(session.party_id),
            "token_hash": token_hash,
            "caller_hash": caller_hash,
            "level": session.level,
            "factors": sorted(f.value for f in session.factors),
            "one_time_element": session.one_time_element,
            "authenticated_at": session.authenticated_at,
            "expire_time": session.expires_at,
            "revoke_time": None,
            "proofing_current": session.proofing_current,
        }
        self._db.execute(insert(SESSIONS), [values])

    def live(self, token_hash: bytes, caller_hash: bytes, now: dt.datetime) -> Session | None:
        """The session if it exists, was opened by this caller, is not revoked
        and has not expired."""
        s = SESSIONS.c
        row = self._db.execute(
            select(
                s.party_id,
                s.level,
                s.factors,
                s.one_time_element,
                s.authenticated_at,
                s.expire_time,
                s.revoke_time,
                s.proofing_current,
            ).where(s.token_hash == token_hash, s.caller_hash == caller_hash)
        ).first()
        if row is None or row.revoke_time is not None or row.expire_time <= now:
            return None
        return _session(row)

    def revoke_all(self, party_id: uuid.UUID, now: dt.datetime) -> None:
        self._db.execute(
            update(SESSIONS)
            .where(SESSIONS.c.party_id == party_id, SESSIONS.c.revoke_time.is_(None))
            .values(revoke_time=now)
        )

    def revoke(self, token_hash: bytes, caller_hash: bytes, now: dt.datetime) -> uuid.UUID | None:
        """The session's party; None when there is no such session opened by
        this caller."""
        row = self._db.execute(
            select(SESSIONS.c.id, SESSIONS.c.party_id, SESSIONS.c.revoke_time).where(
                SESSIONS.c.token_hash == token_hash, SESSIONS.c.caller_hash == caller_hash
            )
        ).first()
        if row is None:
            return None
        if row.revoke_time is None:
            self._db.execute(
                update(SESSIONS).where(SESSIONS.c.id == row.id).values(revoke_time=now)
            )
        party_id: uuid.UUID = row.party_id
        return party_id
