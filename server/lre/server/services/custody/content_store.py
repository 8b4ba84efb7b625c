"""Where letters' content is kept: the database (the zero-setup default) or
an S3-compatible object store. Either way only ciphertext leaves the
process (content.py encrypts it under the letter's own key, wrapped by the
signer), framed as the spool frames it: part, sequence, length, then nonce
and ciphertext.

With the object store, every deposit's content is one object under an
opaque random key (nothing in it names the letter, its parties or its files),
uploaded as it arrives, before the deposit's transaction; that transaction
names the object on the letter's row. So that a deposit that fails or a
process that dies leaves nothing behind, the key was recorded as loose
before the upload (object_keys.py) and the deposit's transaction removes
that record; the content objects worker deletes what stays loose. The
object's Object Lock retention is set only once the deposit has committed
(an object locked before would be an orphan nobody could delete), by the
retainer's thread (retainer.py)."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import uuid
from collections.abc import Callable, Iterator
from typing import Protocol

from lre.server.adapters.object_store import ObjectStore
from lre.server.adapters.object_upload import MultipartUpload
from lre.server.domain.errors import DependencyUnavailable
from lre.server.services.custody.content import (
    RECORD,
    ChunkSource,
    ContentSink,
    Spool,
)
from lre.server.services.custody.object_keys import ObjectKeys
from lre.server.services.custody.retainer import RETAIN_DELAY, Retainer
from lre.server.storage.letters import ContentRepository
from lre.server.storage.objects import Owner
from lre.server.storage.store import Store, Stores

logger = logging.getLogger("lre.server")

# A deletion the store refused (unreachable, or the object still locked) is
# tried again this much later.
RETRY_DELETE = dt.timedelta(hours=1)


class ContentStore(Protocol):
    """What the custody services need of the place content is kept."""

    def sink(self, spool_dir: str | None) -> ContentSink:
        """Where a new deposit's ciphertext goes as it arrives."""

    def source(self, rows: ContentRepository, object_key: str | None) -> ChunkSource:
        """Where stored content is read: the database's ``rows``, or the object."""

    def keep(
        self,
        store: Store,
        rows: ContentRepository,
        owner: Owner,
        deposit_time: dt.datetime,
        sink: ContentSink,
    ) -> None:
        """In the deposit's transaction, the owner's row written: the spool
        copied into ``rows``, or the uploaded object kept (no longer loose:
        the row names it; its retention comes once the deposit commits)."""

    def committed(self, owner: Owner, object_key: str | None, deposit_time: dt.datetime) -> None:
        """After the deposit's commit: the object's retention (soon after)."""

    def hold(self, object_key: str | None, on: bool) -> None:
        """A legal hold put on (before the commit) or lifted (after it)."""

    def close(self) -> None:
        """What the process still owes the store done (the server stopping)."""


class DatabaseContent:
    """Content in the database's rows (content_chunks, mailing_chunks)."""

    def sink(self, spool_dir: str | None) -> ContentSink:
        return Spool(spool_dir)

    def keep(
        self,
        store: Store,
        rows: ContentRepository,
        owner: Owner,
        deposit_time: dt.datetime,
        sink: ContentSink,
    ) -> None:
        sink.store(rows, owner.id)

    def source(self, rows: ContentRepository, object_key: str | None) -> ChunkSource:
        if object_key is not None:
            raise DependencyUnavailable(
                "this content is in the object store, which this server is not configured for"
            )
        return rows

    def committed(self, owner: Owner, object_key: str | None, deposit_time: dt.datetime) -> None:
        return None

    def hold(self, object_key: str | None, on: bool) -> None:
        return None

    def close(self) -> None:
        return None


class ObjectSink:
    """A deposit's ciphertext uploaded as it arrives (one part in memory)."""

    def __init__(self, upload: MultipartUpload, forget: Callable[[str], None]) -> None:
        """``forget``: the loose record dropped once the object is gone."""
        self._upload = upload
        self.forget = forget
        self.object_key: str | None = upload.key
        self.digests: list[bytes] = []
        self._done = False

    def write(self, part_index: int, sequence: int, ciphertext: bytes) -> None:
        self._upload.write(RECORD.pack(part_index, sequence, len(ciphertext)) + ciphertext)

    def finish(self) -> None:
        self._upload.complete()

    def stored(self) -> tuple[str, bytes] | None:
        return self._upload.key, self._upload.digest()

    def store(self, content: ContentRepository, owner_id: uuid.UUID) -> None:
        """Nothing to copy: the row names the object."""

    def discard(self) -> None:
        """The deposit did not commit: the upload aborted, the object deleted.
        When the store cannot be reached now, the loose record stays and the
        content objects worker does it later."""
        if self._done:
            return
        self._done = True
        try:
            self._upload.abort()
        except DependencyUnavailable:
            logger.warning("content object left for the cleaner")
            return
        self.forget(self._upload.key)

    def close(self) -> None:
        return None


class ObjectChunks:
    """An object's records, (part, sequence, ciphertext) in order, read in
    ranges (one range and one record in memory)."""

    def __init__(self, objects: ObjectStore, object_key: str) -> None:
        self._objects = objects
        self._key = object_key

    def read(self, letter_id: uuid.UUID) -> Iterator[tuple[int, int, bytes]]:
        buffer = bytearray()
        for data in self._objects.ranges(self._key):
            buffer += data
            del data  # one copy of a range at a time
            offset = 0
            while len(buffer) - offset >= RECORD.size:
                part, sequence, length = RECORD.unpack_from(buffer, offset)
                end = offset + RECORD.size + length
                if len(buffer) < end:
                    break
                yield part, sequence, bytes(buffer[offset + RECORD.size : end])
                offset = end
            del buffer[:offset]
        if buffer:
            raise DependencyUnavailable("a content object ends in the middle of a chunk")


class ObjectContent:
    """Content in an S3-compatible object store."""

    def __init__(
        self,
        stores: Stores,
        objects: ObjectStore,
        retention: dt.timedelta,
        clock: Callable[[], dt.datetime],
        prefix: str = "content/",
    ) -> None:
        self._stores = stores
        self.objects = objects
        self._retention = retention
        self._clock = clock
        self._keys = ObjectKeys(stores, clock, prefix)
        self._retainer = Retainer(stores, objects, clock)

    def now(self) -> dt.datetime:
        return self._clock()

    def new_key(self) -> str:
        return self._keys.new_key()

    def sink(self, spool_dir: str | None) -> ContentSink:
        return ObjectSink(self.objects.upload(self._keys.take()), self.forget)

    def forget(self, key: str) -> None:
        with self._stores.begin() as store:
            store.objects.keep(key)

    def source(self, rows: ContentRepository, object_key: str | None) -> ChunkSource:
        # A letter deposited before the store was configured (or not moved yet) is in its rows.
        return rows if object_key is None else ObjectChunks(self.objects, object_key)

    def retain_until(self, deposit_time: dt.datetime) -> dt.datetime:
        return deposit_time + self._retention

    def keep(
        self,
        store: Store,
        rows: ContentRepository,
        owner: Owner,
        deposit_time: dt.datetime,
        sink: ContentSink,
    ) -> None:
        sink.store(rows, owner.id)
        if sink.object_key is not None:
            # The row says the retention is not set yet (committed() sets it).
            store.objects.keep(sink.object_key)

    def committed(self, owner: Owner, object_key: str | None, deposit_time: dt.datetime) -> None:
        """The retention, queued now the letter is accepted: the retainer
        sets it and records it on the row; when the store cannot be reached
        or the process dies first, the content objects worker does."""
        if object_key is not None:
            self._retainer.submit(owner, object_key, self.retain_until(deposit_time))

    def settle(self, timeout_s: float = 30.0) -> bool:
        """Waits for the retentions queued (see Retainer.settle)."""
        return self._retainer.settle(timeout_s)

    def close(self) -> None:
        self._retainer.close()

    def lock(self, owner: Owner, object_key: str, deposit_time: dt.datetime) -> None:
        until = self.retain_until(deposit_time)
        if until > self._clock():
            self.objects.retain(object_key, until)
        with self._stores.begin() as store:
            store.objects.retained(owner, until)

    def hold(self, object_key: str | None, on: bool) -> None:
        if object_key is not None:
            self.objects.hold(object_key, on)

    # -- the worker's steps ------------------------------------------------------

    def loose_count(self) -> int:
        with self._stores.read() as store:
            return store.objects.loose_count()

    def audit(self, after: str, batch: int) -> tuple[list[str], str]:
        """The next ``batch`` kept objects by key after ``after`` checked: each
        exists, its bytes have the SHA-256 written, and its retention runs
        until the letter's. The problems (which owner, what), and where the
        next batch starts ("" when this was the last)."""
        with self._stores.read() as store:
            kept = store.objects.kept(batch, after)
        problems = []
        for item in kept:
            name = f"{item.owner.table}/{item.owner.id}"
            if not self.objects.exists(item.key):
                problems.append(f"{name}: its content object is missing")
                continue
            hashed = hashlib.sha256()
            for data in self.objects.ranges(item.key):
                hashed.update(data)
            if item.digest is not None and hashed.digest() != item.digest:
                problems.append(f"{name}: its content object differs from what was written")
            until = item.retain_until
            if self.objects.locking and until is not None and until > self._clock():
                held = self.objects.retention(item.key)
                if held is None or held < until:
                    problems.append(f"{name}: its content object is not retained until its date")
                    self.objects.retain(item.key, until)  # from now on, it is
        return problems, kept[-1].key if len(kept) == batch else ""

    def lock_pending(self, batch: int = 100) -> tuple[int, int]:
        """Retention on the objects of committed deposits that have none yet,
        a minute after their deposit began (sooner, their process's retainer
        is on them; after a long upload both may set it, the same date): how
        many were found without it, and how many now have it (the others,
        refused by the store, are tried again next round)."""
        with self._stores.read() as store:
            pending = store.objects.unretained(batch, self._clock() - RETAIN_DELAY)
        locked = 0
        for owner, key, deposit_time in pending:
            try:
                self.lock(owner, key, deposit_time)
            except DependencyUnavailable:
                continue
            locked += 1
        return len(pending), locked

    def delete_loose(self, batch: int = 100) -> int:
        """Deletes the loose objects that are due (every version, and any
        unfinished upload); one the store refuses is tried again later. How many."""
        now = self._clock()
        with self._stores.read() as store:
            due = store.objects.due_loose(now, batch)
        done = 0
        for key in due:
            try:
                self.objects.abort_uploads(key)
                self.objects.delete(key)
            except DependencyUnavailable:
                with self._stores.begin() as store:
                    store.objects.postpone(key, now + RETRY_DELETE)
                continue
            with self._stores.begin() as store:
                store.objects.keep(key)
            done += 1
        return done
