"""The security journal as the log holds it, read back for the identity tests."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session as DbSession
from sqlalchemy.orm import sessionmaker

from lre.server.domain import journal
from lre.server.domain.log import LogKind
from lre.server.storage import models

Journal = list[dict[str, Any]]


def security_journal(database: sessionmaker[DbSession]) -> Journal:
    """Every journal entry (the log's leaves of no letter), each checked to be
    one the service may write, with its fields only."""
    with database() as db:
        leaves = db.scalars(
            select(models.LogEntry.leaf)
            .where(models.LogEntry.letter_id.is_(None))
            .order_by(models.LogEntry.create_time, models.LogEntry.id)
        )
        # The clock is frozen between steps: same-instant entries by kind.
        found = sorted(
            (json.loads(leaf) for leaf in leaves), key=lambda e: (e["eventTime"], e["kind"])
        )
    for leaf in found:  # every entry is one the service may write, with its fields only
        assert journal.problems(LogKind(leaf["kind"]), leaf) == [], leaf
    return found
