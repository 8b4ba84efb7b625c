"""What keeps one client from holding a gRPC process: how long a call may
wait on its client, and how many long calls a caller, an end user and a
class of method may keep open at once (the admission gate's budgets)."""

from __future__ import annotations

import contextlib
import enum
import hashlib
import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Protocol

import grpc

from lre.runtime.callers import certificate_names

log = logging.getLogger("lre.rpc")


class Kind(enum.Enum):
    """Classes of calls that hold a thread for long, each with its own budget."""

    UPLOAD = "upload"  # client streams: deposits
    DOWNLOAD = "download"  # server streams: content, bundles, event streams
    WATCH = "watch"  # grpc.health.v1.Health/Watch: as long as the client likes
    REFLECTION = "reflection"  # grpc.reflection: a stream per client tool
    # A unary call whose client sent its headers but not its request message
    # for over a second: normal calls never count here.
    STALLED = "stalled"


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
    # The longest any streaming call lasts (a deposit, a download, reflection).
    total_s: float = 900.0
    # Long calls of one class open at once from one caller certificate
    # (RESOURCE_EXHAUSTED beyond).
    per_caller: int = 8
    # ... and from one end user (a session's bearer token) within a caller:
    # one sender's stalled deposits do not exhaust its gateway's budget.
    per_user: int = 4
    # Threads never given to long calls, whoever opens them: unary calls and
    # health checks always find one.
    reserved_threads: int = 4
    # Health Watch streams and reflection streams open at once in the process
    # (every caller together), and how long a Watch lasts before the client
    # must open another.
    watches: int = 2
    reflections: int = 2
    watch_total_s: float = 300.0
    # How long a unary call may wait for its request message before it counts
    # as stalled (and against its caller's budgets of long calls); a tenth of
    # that for a caller with more than half the reserved threads waiting so.
    stalled_after_s: float = 1.0


class StreamSettings(Protocol):
    """A process's settings that bound its streams (named alike in both)."""

    @property
    def stream_idle_s(self) -> float: ...
    @property
    def stream_total_s(self) -> float: ...
    @property
    def streams_per_caller(self) -> int: ...
    @property
    def streams_per_user(self) -> int: ...
    @property
    def reserved_threads(self) -> int: ...
    @property
    def watch_streams(self) -> int: ...
    @property
    def reflection_streams(self) -> int: ...
    @property
    def watch_total_s(self) -> float: ...


def stream_limits(settings: StreamSettings) -> StreamLimits:
    return StreamLimits(
        idle_s=settings.stream_idle_s,
        total_s=settings.stream_total_s,
        per_caller=settings.streams_per_caller,
        per_user=settings.streams_per_user,
        reserved_threads=settings.reserved_threads,
        watches=settings.watch_streams,
        reflections=settings.reflection_streams,
        watch_total_s=settings.watch_total_s,
    )


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


@dataclass(frozen=True)
class Ticket:
    """One admitted long call, to hand back when it ends."""

    kind: Kind
    caller: str
    user: str


class Admission:
    """Counts the long calls in flight per class, per caller, per end user
    and in all, and refuses one beyond a budget (naming which)."""

    def __init__(self, limits: StreamLimits, streams: int) -> None:
        self._limits = limits
        # Every long call together stays below the threads left after the reserve.
        self._total = max(1, streams)
        self._class_caps = {
            Kind.UPLOAD: self._total,
            Kind.DOWNLOAD: self._total,
            Kind.WATCH: limits.watches,
            Kind.REFLECTION: limits.reflections,
            Kind.STALLED: max(1, self._total // 2),
        }
        self._counts: dict[tuple[object, ...], int] = {}
        self._lock = threading.Lock()

    def enter(self, kind: Kind, caller: str, user: str) -> tuple[Ticket | None, str]:
        """(the ticket, "") when admitted; otherwise (None, the budget exceeded):
        "caller", "user", "class" or "all"."""
        keys = {
            "caller": ((kind, caller), min(self._limits.per_caller, self._total)),
            "user": ((kind, caller, user), self._limits.per_user),
            "class": ((kind,), self._class_caps[kind]),
            "all": (("all",), self._total),
        }
        with self._lock:
            for budget, (key, cap) in keys.items():
                if budget == "user" and not user:
                    continue
                if self._counts.get(key, 0) >= cap:
                    return None, budget
            for budget, (key, _cap) in keys.items():
                if budget != "user" or user:
                    self._counts[key] = self._counts.get(key, 0) + 1
        return Ticket(kind, caller, user), ""

    @contextlib.contextmanager
    def waiting(self, caller: str) -> Iterator[int]:
        """Counts the caller's unary calls waiting for their request message
        while the block runs; gives how many (this one included)."""
        key = ("waiting", caller)
        with self._lock:
            count = self._counts[key] = self._counts.get(key, 0) + 1
        try:
            yield count
        finally:
            with self._lock:
                left = self._counts[key] - 1
                if left:
                    self._counts[key] = left
                else:
                    del self._counts[key]

    def leave(self, ticket: Ticket) -> None:
        keys: list[tuple[object, ...]] = [
            (ticket.kind, ticket.caller),
            (ticket.kind,),
            ("all",),
        ]
        if ticket.user:
            keys.append((ticket.kind, ticket.caller, ticket.user))
        with self._lock:
            for key in keys:
                left = self._counts[key] - 1
                if left:
                    self._counts[key] = left
                else:
                    del self._counts[key]


def caller_of(context: grpc.ServicerContext) -> str:
    """Who a call comes from: the DNS names of its TLS client certificate, or
    without one the peer's address (port left out)."""
    names = certificate_names(context)
    if names:
        return ",".join(sorted(names))
    return context.peer().rsplit(":", 1)[0]


def user_of(metadata: Mapping[str, object]) -> str:
    """The end user a call is made for, as far as the gate can tell: a digest
    of its session's bearer token (never the token), or "" without one."""
    value = metadata.get("authorization")
    if not isinstance(value, str) or not value:
        return ""
    return hashlib.sha256(value.encode()).hexdigest()[:16]
