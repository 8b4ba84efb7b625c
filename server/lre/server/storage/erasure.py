"""Personal data past its schedule, and its erasure: the SQL behind
lre.server.domain.retention. A party's row stays (its letters and the log
name it), without its names, e-mail and address; its identity records stay
without their details and salt; its credentials, sessions, throttles and
proofing challenges go."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import case, delete, func, or_, select, union_all, update

from lre.server.domain.identity import Consent, IdentityRecord, Party
from lre.server.domain.letters import LetterState
from lre.server.domain.retention import PartyLetters, PersonalDataKind, RetentionSchedule
from lre.server.storage import models
from lre.server.storage.records import Db, from_row, table

PARTIES = table(models.Party)
RECORDS = table(models.IdentityRecord)
LETTERS = table(models.Letter)
CREDENTIALS = table(models.Credential)
SESSIONS = table(models.AuthSession)
THROTTLES = table(models.AuthThrottle)
CHALLENGES = table(models.ProofingChallenge)
CONSENTS = table(models.Consent)
CORRECTIONS = table(models.PartyCorrection)
OUTBOX = table(models.OutboxMessage)
WEBHOOKS = table(models.Webhook)

OPEN = [state for state in LetterState if not state.final]


def _letters(party: uuid.UUID | None = None) -> Any:
    """Per party: its letters not final, on hold, and the last one's time."""
    when = func.coalesce(
        LETTERS.c.decision_time, LETTERS.c.notification_time, LETTERS.c.deposit_time
    )
    sides = []
    for column in (LETTERS.c.sender_id, LETTERS.c.recipient_id):
        side = select(
            column.label("party_id"),
            LETTERS.c.state.label("state"),
            LETTERS.c.legal_hold.label("legal_hold"),
            when.label("at"),
        )
        if party is not None:
            side = side.where(column == party)
        sides.append(side)
    each = union_all(*sides).subquery()
    return (
        select(
            each.c.party_id,
            func.sum(case((each.c.state.in_(OPEN), 1), else_=0)).label("open"),
            func.sum(case((each.c.legal_hold, 1), else_=0)).label("held"),
            func.max(each.c.at).label("last"),
        )
        .group_by(each.c.party_id)
        .subquery()
    )


class PersonalDataRepository:
    def __init__(self, db: Db) -> None:
        self._db = db

    def letters_of(self, party_id: uuid.UUID) -> PartyLetters:
        summary = _letters(party_id)
        row = self._db.execute(
            select(summary.c.open, summary.c.held, summary.c.last).where(
                summary.c.party_id == party_id
            )
        ).one_or_none()
        if row is None:
            return PartyLetters(0, 0, None)
        return PartyLetters(int(row.open or 0), int(row.held or 0), _aware(row.last))

    def due(self, now: dt.datetime, schedule: RetentionSchedule, batch: int) -> list[uuid.UUID]:
        """Up to ``batch`` parties whose data is past the schedule and not erased."""
        summary = _letters()
        query = (
            select(PARTIES.c.id)
            .outerjoin(summary, summary.c.party_id == PARTIES.c.id)
            .where(PARTIES.c.erase_time.is_(None))
            .where(
                or_(
                    summary.c.party_id.is_(None)
                    & (PARTIES.c.create_time <= now - schedule.party_without_letters),
                    (summary.c.open == 0)
                    & (summary.c.held == 0)
                    & (summary.c.last <= now - schedule.party_after_last_letter),
                )
            )
            .order_by(PARTIES.c.id)
            .limit(batch)
        )
        return list(self._db.scalars(query))

    def lock_party(self, party_id: uuid.UUID) -> Party | None:
        row = self._db.execute(
            select(PARTIES).where(PARTIES.c.id == party_id).with_for_update()
        ).one_or_none()
        return None if row is None else from_row(Party, row)

    def erase(self, party_id: uuid.UUID, now: dt.datetime) -> dict[PersonalDataKind, int]:
        """The party's personal data erased; how many rows of each kind."""
        self._db.execute(
            update(PARTIES)
            .where(PARTIES.c.id == party_id)
            .values(
                given_name=None,
                family_name=None,
                company_name=None,
                email="",
                postal_address=None,
                erase_time=now,
            )
        )
        records = self._db.execute(
            update(RECORDS)
            .where(RECORDS.c.party_id == party_id, RECORDS.c.erase_time.is_(None))
            .values(details={}, evidence_summary="", digest_salt=None, erase_time=now)
        ).rowcount  # type: ignore[attr-defined]
        counts = {
            PersonalDataKind.PARTY: 1,
            PersonalDataKind.IDENTITY_RECORD: records,
            PersonalDataKind.OUTBOX: self._erase_outbox(party_id),
            PersonalDataKind.WEBHOOK: self._end_webhooks(party_id, now),
        }
        for kind, rows in (
            (PersonalDataKind.CREDENTIAL, CREDENTIALS),
            (PersonalDataKind.SESSION, SESSIONS),
            (None, THROTTLES),
            (None, CHALLENGES),
        ):
            done = self._db.execute(delete(rows).where(rows.c.party_id == party_id))
            deleted = done.rowcount  # type: ignore[attr-defined]
            if kind is not None:
                counts[kind] = deleted
        return counts

    def _erase_outbox(self, party_id: uuid.UUID) -> int:
        """Its one-time code messages go (an encrypted code, expired); the
        messages about its letters stay (the notice is part of the proof of
        notification) without their last error, which may quote its address."""
        codes = self._db.execute(
            delete(OUTBOX).where(
                OUTBOX.c.letter_id.is_(None),
                OUTBOX.c.payload["party"].as_string() == str(party_id),
            )
        ).rowcount  # type: ignore[attr-defined]
        letters = select(LETTERS.c.id).where(
            or_(LETTERS.c.sender_id == party_id, LETTERS.c.recipient_id == party_id)
        )
        self._db.execute(
            update(OUTBOX)
            .where(OUTBOX.c.letter_id.in_(letters), OUTBOX.c.last_error.is_not(None))
            .values(last_error=None)
        )
        return int(codes)

    def _end_webhooks(self, party_id: uuid.UUID, now: dt.datetime) -> int:
        """Its webhooks end, their address (which may name it), key and last
        error gone; the rows stay, as deleted webhooks do."""
        return int(
            self._db.execute(
                update(WEBHOOKS)
                .where(
                    WEBHOOKS.c.owner_id == party_id,
                    or_(WEBHOOKS.c.url != "", WEBHOOKS.c.delete_time.is_(None)),
                )
                .values(
                    delete_time=func.coalesce(WEBHOOKS.c.delete_time, now),
                    url="",
                    secret_ciphertext=b"",
                    last_error=None,
                )
            ).rowcount  # type: ignore[attr-defined]
        )

    def delete_old_sessions(self, before: dt.datetime, batch: int) -> int:
        """Sessions that ended (expired or revoked) before ``before``, up to ``batch``."""
        ended = func.coalesce(SESSIONS.c.revoke_time, SESSIONS.c.expire_time)
        ids = list(self._db.scalars(select(SESSIONS.c.id).where(ended < before).limit(batch)))
        if ids:
            self._db.execute(delete(SESSIONS).where(SESSIONS.c.id.in_(ids)))
        return len(ids)

    def export(self, party_id: uuid.UUID) -> dict[str, Any]:
        """What the service holds on the party (GDPR art. 15, 20), as rows."""
        records = self._db.execute(
            select(RECORDS).where(RECORDS.c.party_id == party_id).order_by(RECORDS.c.proof_time)
        )
        consents = self._db.execute(
            select(CONSENTS)
            .where(or_(CONSENTS.c.recipient_id == party_id, CONSENTS.c.sender_id == party_id))
            .order_by(CONSENTS.c.grant_time)
        )
        corrections = self._db.execute(
            select(CORRECTIONS.c.id, CORRECTIONS.c.correct_time, CORRECTIONS.c.before)
            .where(CORRECTIONS.c.party_id == party_id)
            .order_by(CORRECTIONS.c.correct_time)
        )
        letters = self._db.execute(
            select(
                LETTERS.c.id,
                LETTERS.c.sender_id,
                LETTERS.c.recipient_id,
                LETTERS.c.state,
                LETTERS.c.deposit_time,
            )
            .where(or_(LETTERS.c.sender_id == party_id, LETTERS.c.recipient_id == party_id))
            .order_by(LETTERS.c.deposit_time)
        )
        sessions = self._db.scalar(
            select(func.count()).select_from(SESSIONS).where(SESSIONS.c.party_id == party_id)
        )
        return {
            "identity_records": [from_row(IdentityRecord, r) for r in records],
            "consents": [from_row(Consent, r) for r in consents],
            "corrections": [dict(r._mapping) for r in corrections],
            "letters": [dict(r._mapping) for r in letters],
            "sessions": int(sessions or 0),
        }


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    """SQLite gives naive UTC times back from an aggregate."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=dt.UTC)
