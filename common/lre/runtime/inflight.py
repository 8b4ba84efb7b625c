"""How many calls this process has at work: what background work in the
same process gives way to.

A server runs its workers as threads beside its API by default, and the
heaviest of them (the outbox, which renders and has signed a PDF proof for
each sender) competes with the callers for the same interpreter lock and
cores. A caller waits on a deposit; a proof e-mail may come a little later.
So work that can wait calls ``give_way`` before each piece and steps aside,
for a bounded time, while enough calls are at work to keep the process busy
on its own. A call waiting on its client (a slow upload, a stalled stream, a
download the client reads slowly), a health watch waiting for a change of
status, or a stream waiting for something to send (``idle``) is not at
work: holding streams open costs a caller nothing and must not hold back
anyone's e-mails. A caller can still keep calls at work, within its rate
and budgets; the wait is bounded per message for that reason. A worker
process of its own (``lre-server work``) serves no calls and never waits.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
import time
from collections.abc import Callable, Iterator

from prometheus_client import Counter

GAVE_WAY = Counter(
    "lre_worker_gave_way_seconds",
    "Seconds background workers waited for the API's calls in flight to fall.",
    ["worker"],
)
# How often a waiting worker looks again.
_STEP_S = 0.02


class InFlight:
    """Calls at work in this process: the admission gate counts each call from
    its start to its end, but for its waits on the client."""

    def __init__(self) -> None:
        self._count = 0
        self._lock = threading.Lock()

    @property
    def count(self) -> int:
        return self._count

    def enter(self) -> None:
        with self._lock:
            self._count += 1

    def leave(self) -> None:
        with self._lock:
            self._count -= 1

    @contextlib.contextmanager
    def waiting(self) -> Iterator[None]:
        """Out of the count while a call waits on its client (its next
        message, or room to send): a client that stalls or reads slowly
        costs no CPU, and must not hold the workers back."""
        self.leave()
        try:
            yield
        finally:
            self.enter()


# Every gate of the process counts into the one counter: busy is busy,
# whichever listener the calls came in on.
CALLS = InFlight()
# The count the call running in this thread is in (set by the gate).
_CURRENT: contextvars.ContextVar[InFlight | None] = contextvars.ContextVar(
    "lre_call_count", default=None
)
# Calls at work from which a process is busy with its callers: its
# interpreter runs one thread at a time, and a call spends part of its time
# waiting on the database and the signer. Per process, whatever the host's
# cores (each server process is one interpreter; processes = N scales out).
BUSY_CALLS = 4


@contextlib.contextmanager
def counted_as(calls: InFlight) -> Iterator[None]:
    """The call in this thread counts in ``calls`` while it lasts (the gate,
    around each call); ``idle`` and ``InFlight.waiting`` take it out a while."""
    calls.enter()
    token = _CURRENT.set(calls)
    try:
        yield
    finally:
        calls.leave()
        try:
            _CURRENT.reset(token)
        except ValueError:
            # A stream's generator closed from another thread (collected after
            # its client went away): that thread never had the call's count.
            _CURRENT.set(None)


@contextlib.contextmanager
def idle() -> Iterator[None]:
    """Out of the count while a servicer waits for something to happen (a
    stream polling for events): waiting is not work."""
    calls = _CURRENT.get()
    if calls is None:
        yield
        return
    with calls.waiting():
        yield


def give_way(
    worker: str,
    max_wait_s: float,
    calls: InFlight = CALLS,
    threshold: int = BUSY_CALLS,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> float:
    """Waits while at least ``threshold`` calls are at work, at most
    ``max_wait_s`` (so that the work still advances under a sustained load);
    the seconds waited."""
    if calls.count < threshold:
        return 0.0
    start = clock()
    deadline = start + max_wait_s
    while calls.count >= threshold and clock() < deadline:
        sleep(_STEP_S)
    waited = clock() - start
    GAVE_WAY.labels(worker).inc(waited)
    return waited
