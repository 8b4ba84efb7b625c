"""The archive timestamp renewal: the backfill of evidence never looked at,
then the renewal of those whose timestamps stop proving them within the
configured days (``services.archive``), a batch of each per step."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from lre.server.services.archive import ArchiveRenewal

REGISTERED = Counter(
    "lre_archive_evidence_registered", "Evidence whose archive coverage was first recorded."
)
RENEWED = Counter(
    "lre_archive_timestamps_renewed",
    "Evidence given one more archive timestamp (seal, and PDF proof where stored).",
)
PENDING = Gauge(
    "lre_archive_backfill_pending",
    "Evidence whose archive coverage has not been recorded yet.",
    multiprocess_mode="livemax",
)
EARLIEST = Gauge(
    "lre_archive_coverage_earliest_end_timestamp_seconds",
    "When the earliest-ending archive coverage of any evidence ends (Unix time; 0: none).",
    multiprocess_mode="livemin",
)


class ArchiveTimestamps:
    name = "archive_timestamps"

    def __init__(self, renewal: ArchiveRenewal) -> None:
        self._renewal = renewal

    def step(self) -> bool:
        done = self._renewal.step()
        REGISTERED.inc(done.registered)
        RENEWED.inc(done.renewed)
        pending, earliest = self._renewal.summary()
        PENDING.set(pending)
        EARLIEST.set(earliest.timestamp() if earliest else 0)
        return done.registered + done.renewed > 0
