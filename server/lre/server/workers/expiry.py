"""The deadline sweep: letters whose acceptance window closed unanswered get
their proof of non-claim, AcceptanceRejectionExpiry (R53-3 III), dated at the
end of the window and due by the end of the day after it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from prometheus_client import Counter, Gauge, Histogram

from lre.server.services.custody.evidence import EvidenceRecorder
from lre.server.storage.store import Stores

EXPIRED = Counter("lre_letters_expired", "Letters whose acceptance window closed unanswered.")
NON_CLAIM_DELAY = Histogram(
    "lre_non_claim_proof_delay_seconds",
    "From the end of an acceptance window to the sealing of its proof of non-claim.",
    buckets=(60, 300, 900, 3600, 4 * 3600, 12 * 3600, 86400, 2 * 86400),
)
PROOFS_LATE = Counter(
    "lre_non_claim_proofs_late",
    "Proofs of non-claim sealed after the end of the day following the window (R53-3).",
)
PENDING_NON_CLAIM = Gauge(
    "lre_non_claim_oldest_pending_seconds",
    "How long the oldest closed window has waited for its proof of non-claim (0: none).",
    multiprocess_mode="livemax",
)


class ExpirySweep:
    name = "deadlines"

    def __init__(
        self,
        stores: Stores,
        evidence: EvidenceRecorder,
        clock: Callable[[], dt.datetime],
        batch: int = 500,
    ) -> None:
        self._stores = stores
        self._evidence = evidence
        self._clock = clock
        self._batch = batch

    def expire_due(self, batch: int | None = None) -> int:
        """Non-claim for letters whose window has closed, at most ``batch`` of
        them; how many. Concurrent sweepers skip each other's rows."""
        now = self._clock()
        with self._stores.begin() as store:
            due = store.letters.lock_expired_windows(now, batch or self._batch)
            changes = []
            for letter in due:
                lifecycle = letter.lifecycle()
                changes.append((letter, lifecycle, lifecycle.expire(now)))
            self._evidence.record_many(store, changes)
            oldest = store.letters.oldest_expired_window(now)
        for _, lifecycle, _ in changes:
            window = lifecycle.window
            assert window is not None
            NON_CLAIM_DELAY.observe((now - window.closes_at).total_seconds())
            if now >= window.non_claim_proof_due:
                PROOFS_LATE.inc()
        PENDING_NON_CLAIM.set((now - oldest).total_seconds() if oldest else 0)
        EXPIRED.inc(len(due))
        return len(due)

    def step(self) -> bool:
        return self.expire_due() > 0
