"""Object Lock retention set on the objects of committed deposits by a thread
of its own, so that a deposit answers once its transaction commits rather
than after one more request to the store.

Retention can only come after the commit (an object locked before would be
an orphan nobody could delete when the deposit fails), so there is a window
in which an accepted letter's object has none: its row says so
(content_retain_until unset) until the retention is set. Normally the
window lasts as long as the requests queued before it (milliseconds); when
the store refuses or the process dies, the content objects worker sets it
on its next round once the deposit is RETAIN_DELAY old. The content is
write-once all along: its key is named by no one but its row, which never
changes it, and the audit checks its digest."""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from prometheus_client import Gauge

from lre.server.adapters.object_store import ObjectStore
from lre.server.domain.errors import DependencyUnavailable
from lre.server.storage.objects import Owner
from lre.server.storage.store import Stores

logger = logging.getLogger("lre.server")

# From this age on, a deposit whose object has no retention is the worker's:
# the retainer of its process is done with it or gone.
RETAIN_DELAY = dt.timedelta(minutes=1)
# Retentions recorded on the rows in one transaction.
BATCH = 100
# Requests to the store in flight at once: one at a time would fall behind
# the deposits (each waits for its answer).
IN_FLIGHT = 4

PENDING = Gauge(
    "lre_content_retention_pending",
    "Committed content objects waiting in this process for their retention.",
    multiprocess_mode="livesum",
)


@dataclass(frozen=True)
class Pending:
    owner: Owner
    key: str
    until: dt.datetime


class Retainer:
    """Retention requests in the order deposits committed; started on the
    first. Thread-safe."""

    def __init__(
        self, stores: Stores, objects: ObjectStore, clock: Callable[[], dt.datetime]
    ) -> None:
        self._stores = stores
        self._objects = objects
        self._clock = clock
        self._changed = threading.Condition()
        self._queue: deque[Pending] = deque()
        # Submitted and not yet recorded (queued, or being set).
        self._unfinished = 0
        self._thread: threading.Thread | None = None
        self._pool = ThreadPoolExecutor(IN_FLIGHT, thread_name_prefix="content-retention")
        self._stopping = False

    def submit(self, owner: Owner, key: str, until: dt.datetime) -> None:
        with self._changed:
            if self._stopping:
                return  # the row says unset: the worker sets it
            self._queue.append(Pending(owner, key, until))
            self._unfinished += 1
            PENDING.inc()
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="content-retention", daemon=True
                )
                self._thread.start()
            self._changed.notify_all()

    def settle(self, timeout_s: float = 30.0) -> bool:
        """Waits until every retention submitted is set or left to the worker;
        whether that happened within ``timeout_s``."""
        with self._changed:
            return self._changed.wait_for(lambda: self._unfinished == 0, timeout_s)

    def close(self, timeout_s: float = 10.0) -> None:
        """Sets what is queued (at most ``timeout_s``), then stops."""
        self.settle(timeout_s)
        with self._changed:
            self._stopping = True
            self._changed.notify_all()
        if self._thread is not None:
            self._thread.join(timeout_s)
        self._pool.shutdown(wait=False)

    def _next(self) -> list[Pending] | None:
        with self._changed:
            self._changed.wait_for(lambda: bool(self._queue) or self._stopping)
            if self._stopping and not self._queue:
                return None
            return [self._queue.popleft() for _ in range(min(BATCH, len(self._queue)))]

    def _run(self) -> None:
        while (batch := self._next()) is not None:
            try:
                self._retain(batch)
            except Exception:  # the rows stay unset: the worker sets them
                logger.exception("content retention left for the worker")
            with self._changed:
                self._unfinished -= len(batch)
                PENDING.dec(len(batch))
                self._changed.notify_all()

    def _retain(self, batch: list[Pending]) -> None:
        failed = threading.Event()

        def retain(item: Pending) -> bool:
            if failed.is_set():
                return False  # the store is failing: the rest left as well
            try:
                if item.until > self._clock():
                    self._objects.retain(item.key, item.until)
            except DependencyUnavailable:
                failed.set()
                return False
            return True

        results = self._pool.map(retain, batch)
        done = [(p.owner, p.until) for p, ok in zip(batch, results, strict=True) if ok]
        if failed.is_set():
            logger.warning("content retention left for the worker")
        if done:
            with self._stores.begin() as store:
                store.objects.retained_all(done)
