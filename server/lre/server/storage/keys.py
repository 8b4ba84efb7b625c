"""What is encrypted under keys that rotate, read in batches by id and
replaced by compare and set (a row changed meanwhile, by a purge or another
rotation, is left alone): the letters' wrapped content keys, and the secrets
at rest (TOTP seeds, webhook secrets, e-mailed codes waiting in the outbox)."""

from __future__ import annotations

import enum
import uuid
from typing import Any

from sqlalchemy import Column, select, update

from lre.server.domain.letters import OutboxKind, OutboxState
from lre.server.storage import models
from lre.server.storage.records import Db, table

LETTERS = table(models.Letter)
CREDENTIALS = table(models.Credential)
WEBHOOKS = table(models.Webhook)
OUTBOX = table(models.OutboxMessage)


class Secret(enum.Enum):
    """A column encrypted under the secrets key, with its row's id bound into
    the ciphertext as associated data."""

    TOTP = "TOTP secrets"
    WEBHOOK = "webhook secrets"


def _columns(secret: Secret) -> tuple[Column[Any], Column[Any]]:
    if secret is Secret.TOTP:
        return CREDENTIALS.c.party_id, CREDENTIALS.c.totp_secret
    return WEBHOOKS.c.id, WEBHOOKS.c.secret_ciphertext


class KeyRepository:
    def __init__(self, db: Db) -> None:
        self._db = db

    def wrapped_keys(
        self, after: uuid.UUID | None, batch: int
    ) -> list[tuple[uuid.UUID, bytes | None]]:
        """The next letters by id, with their wrapped content key (None once purged)."""
        query = select(LETTERS.c.id, LETTERS.c.wrapped_key).order_by(LETTERS.c.id)
        if after is not None:
            query = query.where(LETTERS.c.id > after)
        return [(row.id, row.wrapped_key) for row in self._db.execute(query.limit(batch))]

    def replace_wrapped_key(self, letter_id: uuid.UUID, old: bytes, new: bytes) -> bool:
        """Whether the letter still held ``old`` and now holds ``new``."""
        result = self._db.execute(
            update(LETTERS)
            .where(LETTERS.c.id == letter_id, LETTERS.c.wrapped_key == old)
            .values(wrapped_key=new)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    def secrets(
        self, secret: Secret, after: uuid.UUID | None, batch: int
    ) -> list[tuple[uuid.UUID, bytes]]:
        """The next rows by id that hold the secret: (row id, ciphertext). An
        empty value is a secret erased (an erased party's webhooks)."""
        key, blob = _columns(secret)
        query = select(key, blob).where(blob.is_not(None), blob != b"").order_by(key).limit(batch)
        if after is not None:
            query = query.where(key > after)
        return [(row_id, ciphertext) for row_id, ciphertext in self._db.execute(query)]

    def replace_secret(self, secret: Secret, row_id: uuid.UUID, old: bytes, new: bytes) -> bool:
        key, blob = _columns(secret)
        result = self._db.execute(
            update(key.table).where(key == row_id, blob == old).values({blob: new})
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    def email_codes(self) -> list[tuple[uuid.UUID, dict[str, Any]]]:
        """The e-mailed codes not sent yet, as (outbox id, payload), locked;
        those being sent too (a worker that died sending one leaves it
        SENDING, and the next sends it again). One being sent right now is
        skipped rather than waited for."""
        rows = self._db.execute(
            select(OUTBOX.c.id, OUTBOX.c.payload)
            .where(
                OUTBOX.c.kind == OutboxKind.EMAIL_CODE.value,
                OUTBOX.c.state.in_([OutboxState.PENDING, OutboxState.SENDING]),
            )
            .with_for_update(skip_locked=True)
        )
        return [(outbox_id, payload) for outbox_id, payload in rows]

    def replace_payload(self, outbox_id: uuid.UUID, payload: dict[str, Any]) -> None:
        self._db.execute(update(OUTBOX).where(OUTBOX.c.id == outbox_id).values(payload=payload))
