"""The object store's housekeeping: loose objects deleted once due (uploads
a deposit never committed, content purged or moved back to the database),
and the retention set on the objects of deposits whose commit came before
the store could be reached."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from lre.server.services.custody.content_store import ObjectContent

DELETED = Counter(
    "lre_content_objects_deleted", "Loose objects deleted from the object store (every version)."
)
LOOSE = Gauge(
    "lre_content_objects_loose",
    "Objects of the object store that no letter names, waiting to be deleted.",
    multiprocess_mode="livemax",
)


class ContentObjects:
    name = "content-objects"

    def __init__(self, content: ObjectContent, batch: int = 100) -> None:
        self._content = content
        self._batch = batch

    def step(self) -> bool:
        deleted = self._content.delete_loose(self._batch)
        DELETED.inc(deleted)
        locked = self._content.lock_pending(self._batch)
        LOOSE.set(self._content.loose_count())
        return deleted + locked >= self._batch
