"""What keeps one client from holding a gRPC process: how long a call may
wait on its client, and how many streaming calls a caller may keep open."""

from __future__ import annotations

import contextlib
import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import grpc

log = logging.getLogger("lre.rpc")


@dataclass(frozen=True)
class StreamLimits:
    """How long and how many: what keeps one client from holding the process.

    A sync gRPC server runs each call on one of ``max_workers`` threads for as
    long as the call lasts, so a client that opens streams and then sends
    nothing would hold threads (and whatever the servicer holds meanwhile: a
    database transaction, SQLite's write lock) until every call waits.
    """

    # The longest wait for a client's next request message, or for it to take
    # our next response; then the call is cancelled.
    idle_s: float = 30.0
    # The longest a client may take to send a whole request stream.
    total_s: float = 900.0
    # Streaming calls open at once from one caller (RESOURCE_EXHAUSTED beyond).
    per_caller: int = 8
    # Threads never given to streaming calls, whoever opens them: unary calls
    # and health checks always find one.
    reserved_threads: int = 4


class Watchdog:
    """One thread that cancels the calls waiting on their client past a deadline."""

    def __init__(self, tick_s: float) -> None:
        self._tick_s = tick_s
        self._waits: dict[int, tuple[float, Callable[[], None]]] = {}
        self._ids = itertools.count()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rpc-watchdog", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    @contextlib.contextmanager
    def waiting(self, until: float, expire: Callable[[], None]) -> Iterator[None]:
        """``expire`` runs (on the watchdog's thread) if the block is still
        running at ``until`` (time.monotonic())."""
        key = next(self._ids)
        with self._lock:
            self._waits[key] = (until, expire)
        try:
            yield
        finally:
            with self._lock:
                self._waits.pop(key, None)

    def _run(self) -> None:
        while not self._stop.wait(self._tick_s):
            now = time.monotonic()
            with self._lock:
                due = [key for key, (until, _) in self._waits.items() if until <= now]
                expired = [self._waits.pop(key)[1] for key in due]
            for expire in expired:
                try:
                    expire()
                except Exception:  # the watchdog must outlive any one call
                    log.exception("cancelling an idle call failed")


class Admission:
    """Counts the streaming calls in flight, per caller and in all."""

    def __init__(self, per_caller: int, total: int) -> None:
        self._per_caller = per_caller
        self._total = total
        self._open: dict[str, int] = {}
        self._all = 0
        self._lock = threading.Lock()

    def enter(self, caller: str) -> str | None:
        """None when admitted; otherwise why not."""
        with self._lock:
            if self._open.get(caller, 0) >= self._per_caller:
                return f"at most {self._per_caller} streams at once per caller"
            if self._all >= self._total:
                return "too many streams in progress"
            self._open[caller] = self._open.get(caller, 0) + 1
            self._all += 1
            return None

    def leave(self, caller: str) -> None:
        with self._lock:
            self._all -= 1
            left = self._open[caller] - 1
            if left:
                self._open[caller] = left
            else:
                del self._open[caller]


def caller_of(context: grpc.ServicerContext) -> str:
    """Who a call comes from: the DNS names of its TLS client certificate, or
    without one the peer's address (port left out)."""
    names = context.auth_context().get("x509_subject_alternative_name")
    if names:
        return ",".join(sorted(bytes(n).decode().lower() for n in names))
    return context.peer().rsplit(":", 1)[0]
