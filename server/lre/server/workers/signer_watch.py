"""Journals what the signer shows (its health going down and up, its
certificates), and tells the other workers of this process when it is down."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable

from lre.server.domain.errors import DependencyUnavailable
from lre.server.domain.evidence import EvidenceTimeMismatch
from lre.server.services.journal import SignerWatch

# After the signer was found down, how long the workers leave it alone:
# notices go unsealed (the notice sealer seals them later) and proofs (their
# PDF is signed) wait, rather than each costing the signer client's retries.
SIGNER_PAUSE = dt.timedelta(seconds=10)


class SignerOutage:
    """What this process's workers know of the signer being down, shared by
    the outbox's lanes, the notice sealer and the signer watcher. A worker
    whose call met it down, or a health check that found it down, pauses
    them for SIGNER_PAUSE; a health check asked after that and answered
    SERVING ends the pause at once, so that proofs and late notices go within
    a health interval of the signer's return rather than after the pause or
    a retry delay."""

    def __init__(self, pause: dt.timedelta = SIGNER_PAUSE) -> None:
        self._pause = pause
        self._lock = threading.Lock()
        self._met_at: dt.datetime | None = None  # when it was last found down

    def met_down(self, at: dt.datetime) -> None:
        with self._lock:
            if self._met_at is None or at > self._met_at:
                self._met_at = at

    def failed(self, exc: DependencyUnavailable, at: dt.datetime) -> None:
        """A worker's call failed at ``at`` (taken after the failure: the call
        may have used its whole timeout). Not a clock that disagrees with the
        TSA's: the signer's health does not show it, and no proof waits on it."""
        if not isinstance(exc, EvidenceTimeMismatch):
            self.met_down(at)

    def seen_serving(self, asked_at: dt.datetime) -> None:
        """A health check asked at ``asked_at`` found it serving: a pause
        begun before that question ends (one begun while it was on the way
        stands)."""
        with self._lock:
            if self._met_at is not None and asked_at > self._met_at:
                self._met_at = None

    def down(self, now: dt.datetime) -> bool:
        with self._lock:
            if self._met_at is None:
                return False
            # A clock stepped back by more than the pause ends it too.
            return self._met_at - self._pause <= now < self._met_at + self._pause


class SignerWatcher:
    name = "signer-watch"

    def __init__(
        self, watch: SignerWatch, outage: SignerOutage, clock: Callable[[], dt.datetime]
    ) -> None:
        self._watch = watch
        self._outage = outage
        self._clock = clock

    def step(self) -> bool:
        asked_at = self._clock()
        if self._watch.look():
            self._outage.seen_serving(asked_at)
        else:
            self._outage.met_down(asked_at)
        return False  # once per interval
