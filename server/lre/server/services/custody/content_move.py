"""Kept content moved between the database's rows and the object store,
one letter (or mailing) at a time, each move verified and committed on its
own: an interrupted run is resumed by running it again, what has moved is
skipped. The ciphertext moves as it is (no key is unwrapped): each chunk
stays bound to its owner, part and place.

To the object store: the object is written (recorded as loose first), read
back and compared byte for byte with the rows, then one transaction names it
on the row and deletes the rows. Back to the database: the rows are written
from the object and read back in the same transaction, compared with it,
and the object becomes loose, due when its retention ends (a locked object
cannot be deleted before; the worker deletes it then)."""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from lre.server.domain.errors import DependencyUnavailable
from lre.server.services.custody.content import FLUSH_BYTES, RECORD
from lre.server.services.custody.content_store import ObjectChunks, ObjectContent, ObjectSink
from lre.server.services.custody.object_keys import UPLOAD_GRACE
from lre.server.storage.letters import ContentRepository
from lre.server.storage.objects import Owner
from lre.server.storage.store import Store, Stores

logger = logging.getLogger("lre.server")


@dataclass
class Progress:
    examined: int = 0
    moved: int = 0


class ContentMismatch(Exception):
    """What was read back differs from what was written: nothing committed."""


def _rows(store: Store, owner: Owner) -> ContentRepository:
    return store.mailings.content if owner.mailing else store.content


def _digest(records: Iterable[tuple[int, int, bytes]], hashed: Any) -> None:
    for part, sequence, ciphertext in records:
        hashed.update(RECORD.pack(part, sequence, len(ciphertext)))
        hashed.update(ciphertext)


class ContentMover:
    def __init__(self, stores: Stores, content: ObjectContent) -> None:
        self._stores = stores
        self._content = content
        self._clock = content.now

    def move(self, to_objects: bool, batch: int, report: Callable[[Progress], None]) -> Progress:
        """Every kept content to the object store (``to_objects``) or back."""
        progress = Progress()
        for mailing in (False, True):
            after: uuid.UUID | None = None
            while True:
                with self._stores.read() as store:
                    owners = store.objects.owners(not to_objects, mailing, batch, after)
                if not owners:
                    break
                for owner in owners:
                    progress.examined += 1
                    moved = self._to_object(owner) if to_objects else self._to_rows(owner)
                    progress.moved += moved
                after = owners[-1].id
                report(progress)
        return progress

    def _to_object(self, owner: Owner) -> bool:
        key = self._content.new_key()
        with self._stores.begin() as store:
            store.objects.add_loose(key, self._clock() + UPLOAD_GRACE)
        sink = ObjectSink(self._content.objects.upload(key), self._content.forget)
        try:
            written = hashlib.sha256()
            with self._stores.read() as store:
                for part, sequence, ciphertext in _rows(store, owner).read(owner.id):
                    sink.write(part, sequence, ciphertext)
                    written.update(RECORD.pack(part, sequence, len(ciphertext)) + ciphertext)
            sink.finish()
            read = hashlib.sha256()
            for data in self._content.objects.ranges(key):
                read.update(data)
            if read.digest() != written.digest():
                raise ContentMismatch(f"{owner.table} {owner.id}: the object differs from the rows")
            with self._stores.begin() as store:
                locked = store.objects.lock_owner(owner)
                # Purged or moved meanwhile: the object is discarded.
                deposit_time = None if locked is None or locked[0] is not None else locked[1]
                if deposit_time is not None:
                    _rows(store, owner).delete(owner.id)
                    store.objects.name_object(owner, key, written.digest())
                    store.objects.keep(key)
        except BaseException:
            sink.discard()
            raise
        if deposit_time is None:
            sink.discard()
            return False
        try:
            self._content.lock(owner, key, deposit_time)
        except DependencyUnavailable:
            logger.warning("content retention left for the worker")
        return True

    def _to_rows(self, owner: Owner) -> bool:
        with self._stores.begin() as store:
            locked = store.objects.lock_owner(owner)
            if locked is None or locked[0] is None:
                return False
            key, until = locked[0], locked[2]
            rows = _rows(store, owner)
            rows.delete(owner.id)  # a row of an earlier attempt, if any
            from_object = hashlib.sha256()
            batch: list[dict[str, Any]] = []
            size = 0
            for part, sequence, ciphertext in ObjectChunks(self._content.objects, key).read(
                owner.id
            ):
                from_object.update(RECORD.pack(part, sequence, len(ciphertext)) + ciphertext)
                batch.append(
                    {
                        "letter_id": owner.id,
                        "part_index": part,
                        "sequence": sequence,
                        "ciphertext": ciphertext,
                    }
                )
                size += len(ciphertext)
                if size >= FLUSH_BYTES:
                    rows.add(batch)
                    batch, size = [], 0
            rows.add(batch)
            from_rows = hashlib.sha256()
            _digest(rows.read(owner.id), from_rows)
            if from_rows.digest() != from_object.digest():
                raise ContentMismatch(f"{owner.table} {owner.id}: the rows differ from the object")
            store.objects.name_object(owner, None, None)
            # Locked until its retention ends: deleted then, not before.
            now = self._clock()
            store.objects.add_loose(key, max(now, until) if until else now)
        return True


def move_content(
    stores: Stores,
    content: ObjectContent,
    to_objects: bool,
    batch: int,
    report: Callable[[Progress], None],
) -> Progress:
    """Raises DependencyUnavailable when the store cannot be reached (what
    moved stays moved; run it again) and ContentMismatch when a copy differs."""
    try:
        return ContentMover(stores, content).move(to_objects, batch, report)
    except DependencyUnavailable:
        logger.warning("content move interrupted: the object store is unavailable")
        raise
