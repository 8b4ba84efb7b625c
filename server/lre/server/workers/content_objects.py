"""The object store's housekeeping: loose objects deleted once due (uploads
a deposit never committed, content purged or moved back to the database),
the retention set on the objects of deposits whose process could not set it
(the store refused, or the process stopped first), and a rolling audit of every kept object (it
exists, its bytes are those written, it is retained until the letter's date)."""

from __future__ import annotations

import logging

from prometheus_client import Counter, Gauge

from lre.server.services.custody.content_store import ObjectContent

logger = logging.getLogger("lre.workers")

DELETED = Counter(
    "lre_content_objects_deleted", "Loose objects deleted from the object store (every version)."
)
LOOSE = Gauge(
    "lre_content_objects_loose",
    "Objects of the object store that no letter names, waiting to be deleted.",
    multiprocess_mode="livemax",
)
AUDITED = Counter("lre_content_objects_audited", "Kept objects audited (existence, digest, lock).")
UNRETAINED = Gauge(
    "lre_content_objects_unretained",
    "Objects of committed deposits still without their retention after the worker's last"
    " round (the store refused it); at most the worker's batch.",
    multiprocess_mode="livemax",
)
PROBLEMS = Counter(
    "lre_content_object_problems",
    "Kept objects found missing, altered or not retained until their date by the audit.",
)


class ContentObjects:
    name = "content-objects"

    def __init__(self, content: ObjectContent, batch: int = 100, audit_batch: int = 10) -> None:
        """``audit_batch``: objects audited per round (each read whole)."""
        self._content = content
        self._batch = batch
        self._audit_batch = audit_batch
        # Where the rolling audit goes on from (by key; "" from the start).
        self._audit_after = ""

    def audit(self) -> list[str]:
        """The next objects of the rolling audit; the problems found."""
        problems, self._audit_after = self._content.audit(self._audit_after, self._audit_batch)
        AUDITED.inc(self._audit_batch)
        for problem in problems:
            PROBLEMS.inc()
            logger.error("content object audit", extra={"problem": problem})
        return problems

    def step(self) -> bool:
        deleted = self._content.delete_loose(self._batch)
        DELETED.inc(deleted)
        found, locked = self._content.lock_pending(self._batch)
        UNRETAINED.set(found - locked)
        LOOSE.set(self._content.loose_count())
        self.audit()
        return deleted + locked >= self._batch
