"""Keys for new content objects, each recorded as loose before any upload
under it begins, so that whatever a failed deposit or a dead process leaves
is found and deleted by the content objects worker.

Recording one key per deposit would cost every deposit a transaction of its
own before its upload; instead keys are recorded several at once and handed
out while fresh. A key is handed out only within KEY_FRESH of its record,
due UPLOAD_GRACE after it, so that every upload under it has begun at least
UPLOAD_GRACE - KEY_FRESH before it is due: longer than any deposit stream
may last. A key never handed out (the process stopped, or it went stale)
stays loose and the worker finds nothing under it to delete."""

from __future__ import annotations

import datetime as dt
import secrets
import threading
from collections import deque
from collections.abc import Callable

from lre.server.storage.store import Stores

# How long a recorded upload may run before its object counts as an orphan:
# longer than any deposit stream may last (stream_total_s) plus KEY_FRESH.
UPLOAD_GRACE = dt.timedelta(hours=1)
# How long after its record a key may still be handed out.
KEY_FRESH = dt.timedelta(minutes=10)
# At most this many keys recorded at once: the batch doubles each time one
# is used up while fresh (deposits keep coming) and halves each time one
# goes stale (its leftover keys cost the worker two listings each).
MOST_KEYS = 64


class ObjectKeys:
    """Thread-safe: deposits in flight take keys from one supply."""

    def __init__(
        self, stores: Stores, clock: Callable[[], dt.datetime], prefix: str = "content/"
    ) -> None:
        self._stores = stores
        self._clock = clock
        self._prefix = prefix
        self._lock = threading.Lock()
        self._keys: deque[str] = deque()
        self._recorded = dt.datetime.min.replace(tzinfo=dt.UTC)
        self._batch = 1

    def new_key(self) -> str:
        # Random: the key says nothing of the letter, its parties or files.
        return self._prefix + secrets.token_hex(16)

    def take(self) -> str:
        """A key recorded as loose, fresh: upload under it at once."""
        with self._lock:
            now = self._clock()
            fresh = now < self._recorded + KEY_FRESH
            if not self._keys or not fresh:
                if self._keys:  # gone stale
                    self._batch = max(1, self._batch // 2)
                elif fresh:  # used up while fresh
                    self._batch = min(MOST_KEYS, self._batch * 2)
                keys = [self.new_key() for _ in range(self._batch)]
                with self._stores.begin() as store:
                    store.objects.add_loose_keys(keys, now + UPLOAD_GRACE)
                self._keys = deque(keys)
                self._recorded = now
            return self._keys.popleft()
