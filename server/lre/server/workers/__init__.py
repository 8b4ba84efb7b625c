"""Background workers: they run as threads of the server by default, or as a
deployment of their own (several replicas are safe: each claims its rows)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Protocol

logger = logging.getLogger("lre.workers")


class Worker(Protocol):
    # The thread's name, and the ``worker`` of its log lines.
    name: str

    def step(self) -> bool:
        """Does one batch of work; True when there may be more right away."""
        ...


def repeat(
    stop: threading.Event,
    interval_s: float,
    step: Callable[[], bool],
    name: str,
    ready: Callable[[], bool] = lambda: True,
) -> None:
    """Calls ``step`` while it reports work done, then waits ``interval_s``;
    until ``stop`` is set. A failing step is logged and retried next round.
    Nothing runs before ``ready()`` (the schema is there): a worker over a
    database not yet migrated would only fail, every round."""
    while not stop.is_set():
        try:
            if not ready():
                stop.wait(min(interval_s, 1.0))
                continue
        except Exception:  # the database unreachable: health says so
            stop.wait(min(interval_s, 1.0))
            continue
        try:
            while not stop.is_set() and step():
                pass
        except Exception:
            logger.exception("worker step failed", extra={"worker": name})
        stop.wait(interval_s)
