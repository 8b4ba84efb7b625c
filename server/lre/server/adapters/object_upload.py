"""An object written as it arrives: a small one in one request, a large
one as a multipart upload whose parts are sent in the background while the
next fills (at most PARTS_IN_FLIGHT sent at once, so memory stays bounded:
one part filling and PARTS_IN_FLIGHT being sent)."""

from __future__ import annotations

import hashlib
from collections import deque
from concurrent.futures import Executor, Future
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lre.server.adapters.object_store import ObjectStore

# A multipart upload's parts (S3: at least 5 MiB but the last, at most 10,000).
PART_BYTES = 8 * 1024 * 1024
PARTS_IN_FLIGHT = 1


class MultipartUpload:
    """``complete()`` makes the object visible; ``abort()`` leaves nothing.
    The store's failures are DependencyUnavailable (from ObjectStore)."""

    def __init__(self, store: ObjectStore, key: str, executor: Executor) -> None:
        self._store = store
        self._executor = executor
        self.key = key
        self._upload_id: str | None = None
        self._buffer = bytearray()
        self._etags: list[str] = []
        self._sending: deque[Future[str]] = deque()
        self._completed = False
        self._hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> None:
        self._buffer += data
        self._hash.update(data)
        self.size += len(data)
        if len(self._buffer) >= PART_BYTES:
            self._flush()

    def _flush(self) -> None:
        if self._upload_id is None:
            self._upload_id = self._store.start_upload(self.key)
        while len(self._sending) >= PARTS_IN_FLIGHT:
            # The oldest part sent (or its failure raised) before another is.
            self._etags.append(self._sending.popleft().result())
        data = bytes(self._buffer)
        self._buffer.clear()
        number = len(self._etags) + len(self._sending) + 1
        self._sending.append(
            self._executor.submit(self._store.upload_part, self.key, self._upload_id, number, data)
        )

    def complete(self) -> None:
        if self._upload_id is None and len(self._buffer) < PART_BYTES:
            self._store.put(self.key, bytes(self._buffer))
            self._buffer.clear()
        else:
            if self._buffer:
                self._flush()
            while self._sending:
                self._etags.append(self._sending.popleft().result())
            assert self._upload_id is not None
            self._store.complete_upload(self.key, self._upload_id, self._etags)
            self._upload_id = None
        self._completed = True

    def digest(self) -> bytes:
        """The SHA-256 of the bytes written."""
        return self._hash.digest()

    def abort(self) -> None:
        """Whatever was sent is dropped (an upload, or a completed object).
        Raises DependencyUnavailable when the store cannot be reached: the
        caller's record of the key lets the cleaner do it later."""
        self._buffer.clear()
        while self._sending:
            # Parts still being sent finish (or fail) before the upload is aborted.
            self._sending.popleft().exception()
        if self._upload_id is not None:
            upload_id, self._upload_id = self._upload_id, None
            self._store.abort_upload(self.key, upload_id)
        if self._completed:
            self._store.delete(self.key)
