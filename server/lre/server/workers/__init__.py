"""Background workers: they run as threads of the server by default, or as a
deployment of their own (several replicas are safe: each claims its rows)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import NamedTuple, Protocol

logger = logging.getLogger("lre.workers")


class Worker(Protocol):
    # The thread's name, and the ``worker`` of its log lines.
    name: str

    def step(self) -> bool:
        """Does one batch of work; True when there may be more right away."""
        ...


class Doorbell:
    """How work made in this process wakes the workers that carry it on,
    rather than their looking for it every fraction of a second, a
    transaction per look whether there is work or not.

    The code that made the work (the sequencer, once it indexed entries the
    webhooks deliver) rings, and one waiting worker looks at once; the
    workers still look every interval for work made elsewhere (another
    process, a retry coming due). A ring while every worker is busy is kept
    until one waits again, so none is lost. Not for the outbox: under load
    its lanes find a batch at each look, and a look per deposit would claim
    one message at a time."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._rung = False
        self._open = False

    def ring(self) -> None:
        """Wakes one waiting worker (or the next to wait)."""
        with self._condition:
            self._rung = True
            self._condition.notify()

    def wait(self, timeout_s: float) -> bool:
        """Returns when rung (True) or after ``timeout_s`` (False)."""
        with self._condition:
            if not (self._rung or self._open):
                self._condition.wait(timeout_s)
            rung, self._rung = self._rung or self._open, False
            return rung

    def open(self) -> None:
        """Wakes every worker, waiting or to wait, from now on: at shutdown,
        so that none sleeps its interval out."""
        with self._condition:
            self._open = True
            self._condition.notify_all()


class Scheduled(NamedTuple):
    worker: Worker
    # How long it waits once it has nothing left to do.
    interval_s: float
    # Rung where the work it carries is made (Doorbell): it looks
    # at once then, and its interval only catches work made elsewhere.
    doorbell: Doorbell | None = None


def repeat(
    stop: threading.Event,
    interval_s: float,
    step: Callable[[], bool],
    name: str,
    ready: Callable[[], bool] = lambda: True,
    doorbell: Doorbell | None = None,
) -> None:
    """Calls ``step`` while it reports work done, then waits ``interval_s``
    (or, given a ``doorbell``, until it rings); until ``stop`` is set. A
    failing step is logged and retried next round. Nothing runs before
    ``ready()`` (the schema is there): a worker over a database not yet
    migrated would only fail, every round. Workers sharing a doorbell are
    lanes of one kind: one that finds work rings it, so that another looks
    too (there may be more than one lane can carry)."""
    while not stop.is_set():
        try:
            if not ready():
                stop.wait(min(interval_s, 1.0))
                continue
        except Exception:  # the database unreachable: health says so
            stop.wait(min(interval_s, 1.0))
            continue
        try:
            worked = False
            while not stop.is_set() and step():
                if doorbell is not None and not worked:
                    doorbell.ring()
                worked = True
        except Exception:
            logger.exception("worker step failed", extra={"worker": name})
        if doorbell is None:
            stop.wait(interval_s)
        else:
            doorbell.wait(interval_s)
