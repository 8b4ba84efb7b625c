"""Webhooks and their delivery cursors."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import insert, select, update

from lre.server.domain.records import WebhookRecord
from lre.server.storage import models
from lre.server.storage.records import Db, from_row, paged_records, table, to_row

WEBHOOKS = table(models.Webhook)


class WebhookRepository:
    def __init__(self, db: Db) -> None:
        self._db = db

    def add(self, webhook: WebhookRecord) -> None:
        self._db.execute(insert(WEBHOOKS), [to_row(webhook)])

    def by_request(self, owner_id: uuid.UUID, request_id: str) -> WebhookRecord | None:
        """The webhook the owner's request created (its keys are its own)."""
        row = self._db.execute(
            select(WEBHOOKS).where(
                WEBHOOKS.c.owner_id == owner_id, WEBHOOKS.c.request_id == request_id
            )
        ).one_or_none()
        return None if row is None else from_row(WebhookRecord, row)

    def lock(self, webhook_id: uuid.UUID) -> WebhookRecord | None:
        row = self._db.execute(
            select(WEBHOOKS).where(WEBHOOKS.c.id == webhook_id).with_for_update()
        ).one_or_none()
        return None if row is None else from_row(WebhookRecord, row)

    def claim_due(self, now: dt.datetime) -> WebhookRecord | None:
        """One live webhook due for delivery, locked; others' are skipped."""
        row = self._db.execute(
            select(WEBHOOKS)
            .where(WEBHOOKS.c.delete_time.is_(None), WEBHOOKS.c.next_attempt_time <= now)
            .order_by(WEBHOOKS.c.next_attempt_time)
            .limit(1)
            .with_for_update(skip_locked=True)
        ).one_or_none()
        return None if row is None else from_row(WebhookRecord, row)

    def update(self, webhook_id: uuid.UUID, **values: Any) -> None:
        self._db.execute(update(WEBHOOKS).where(WEBHOOKS.c.id == webhook_id).values(**values))

    def update_claimed(self, webhook_id: uuid.UUID, lease: dt.datetime, **values: Any) -> bool:
        """Updates the webhook if its claim is still the one leased until
        ``lease``; False when another delivery took it meanwhile."""
        done = self._db.execute(
            update(WEBHOOKS)
            .where(
                WEBHOOKS.c.id == webhook_id,
                WEBHOOKS.c.next_attempt_time == lease,
                # Ended meanwhile (its owner erased): nothing is written back.
                WEBHOOKS.c.delete_time.is_(None),
            )
            .values(**values)
        )
        return bool(done.rowcount)  # type: ignore[attr-defined]

    def page_for(
        self, owner_id: uuid.UUID, page_size: int, page_token: str
    ) -> tuple[list[WebhookRecord], str]:
        query = (
            select(WEBHOOKS)
            .where(WEBHOOKS.c.owner_id == owner_id, WEBHOOKS.c.delete_time.is_(None))
            .order_by(WEBHOOKS.c.create_time, WEBHOOKS.c.id)
        )
        return paged_records(
            self._db, query, page_size, page_token, lambda row: from_row(WebhookRecord, row)
        )
