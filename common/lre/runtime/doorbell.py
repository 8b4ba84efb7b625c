"""A doorbell: how work made in this process wakes the workers that carry
it on, instead of their waiting for their next look.

A worker that polls its table every fraction of a second costs a
transaction per look whether there is work or not; one that looks seldom
leaves work waiting. With a doorbell, the code that made the work (a
deposit's transaction that queued a notice, the sequencer that put entries
in the log) rings after its commit and one waiting worker looks at once;
the workers still look every interval for work made elsewhere (another
process, a retry coming due). A ring while every worker is busy is kept
until one waits again, so none is lost.
"""

from __future__ import annotations

import threading


class Doorbell:
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
