"""Whether the TSA may issue time: the local clock checked against several
NTP sources.

A TSA must not issue time it cannot show accurate (ETSI EN 319 421 7.7.2:
within 1 s of UTC): when it cannot, it refuses with PKIStatus rejection,
failInfo timeNotAvailable, and the reason says which bound failed and why.

One source cannot tell a wrong reference from a wrong local clock; several
can. At each check every source is asked once. A source *vouches* for the
local clock when it answered, is synchronised (leap indicator not 3,
stratum 1 to 15), and bounds the local clock's error within
``max_offset_s``: the bound is the measured offset plus the measurement's
uncertainty (half the round trip, plus the source's own root distance,
its root delay over two plus its root dispersion). The TSA stamps while at
least ``quorum`` sources vouch (by default a strict majority of those
configured, so one wrong source among three is outvoted) and the last
check is recent (three intervals). Each check, every source's result and
the decision, goes to the synchronisation journal (signer.clockjournal).
"""

from __future__ import annotations

import logging
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

import ntplib

from lre.signer import metrics
from lre.signer.clockjournal import ClockJournal

log = logging.getLogger("lre.signer.clock")

UNSYNCHRONISED_LEAP = 3


@dataclass(frozen=True)
class ClockStatus:
    trusted: bool
    offset_s: float | None
    reason: str


class ClockCheck(Protocol):
    def status(self) -> ClockStatus: ...

    def close(self) -> None: ...


class LocalClock:
    """Trusts the host clock. For development: production configures sources."""

    def __init__(self) -> None:
        log.warning("TSA clock is not checked against any source (clock_references unset)")
        metrics.CLOCK_TRUSTED.set(1)

    def status(self) -> ClockStatus:
        return ClockStatus(True, None, "local clock trusted by configuration")

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class Source:
    url: str
    host: str
    port: int


@dataclass(frozen=True)
class Measurement:
    """One source's answer at one check; ``offset_s`` is the source's time
    minus ours, ``bound_s`` the most our clock can be off if it is right."""

    source: str
    result: str  # "vouches", "too far", "unsynchronised", "unreachable"
    offset_s: float | None = None
    delay_s: float | None = None
    bound_s: float | None = None
    stratum: int | None = None

    def describe(self) -> str:
        if self.offset_s is None or self.bound_s is None:
            return f"{self.source} {self.result}"
        return (
            f"{self.source} {self.result} (offset {self.offset_s:+.3f} s, "
            f"bound {self.bound_s:.3f} s)"
        )


def measure(client: ntplib.NTPClient, source: Source, max_offset_s: float) -> Measurement:
    try:
        reply = client.request(source.host, port=source.port, version=4, timeout=2)
    except (ntplib.NTPException, OSError) as exc:
        return Measurement(source.url, f"unreachable ({type(exc).__name__})")
    offset, delay = float(reply.offset), max(float(reply.delay), 0.0)
    if reply.leap == UNSYNCHRONISED_LEAP or not 1 <= reply.stratum <= 15:
        return Measurement(source.url, "unsynchronised", offset, delay, None, reply.stratum)
    bound = abs(offset) + delay / 2 + float(reply.root_delay) / 2 + float(reply.root_dispersion)
    result = "vouches" if bound <= max_offset_s else "too far"
    return Measurement(source.url, result, offset, delay, bound, reply.stratum)


class NtpEnsemble:
    """Measures the offset against every source in the background; trusted
    only while ``quorum`` sources vouched at a check under three intervals old."""

    def __init__(
        self,
        sources: list[Source],
        max_offset_s: float,
        interval_s: float,
        quorum: int,
        journal: ClockJournal,
    ) -> None:
        if not 0 < quorum <= len(sources):
            raise ValueError(f"clock_quorum must be between 1 and {len(sources)} (the sources)")
        self._sources = sources
        self._max_offset_s = max_offset_s
        self._interval_s = interval_s
        self._quorum = quorum
        self._journal = journal
        self._client = ntplib.NTPClient()
        self._pool = ThreadPoolExecutor(len(sources), thread_name_prefix="clock-source")
        self._status = ClockStatus(False, None, "no synchronisation check yet")
        self._checked_at = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        metrics.CLOCK_TRUSTED.set(0)
        for source in sources:
            metrics.CLOCK_SOURCE_UP.labels(source.url).set(0)
        self._thread = threading.Thread(target=self._run, name="clock-check", daemon=True)
        self._thread.start()

    def check(self) -> ClockStatus:
        """Asks every source once, decides, journals and publishes the result."""
        found = list(
            self._pool.map(lambda s: measure(self._client, s, self._max_offset_s), self._sources)
        )
        status = self.decide(found)
        for m in found:
            metrics.CLOCK_SOURCE_UP.labels(m.source).set(0 if m.offset_s is None else 1)
            if m.offset_s is not None:
                metrics.CLOCK_SOURCE_OFFSET.labels(m.source).set(m.offset_s)
        metrics.CLOCK_AGREEING.set(sum(m.result == "vouches" for m in found))
        if status.offset_s is not None:
            metrics.CLOCK_OFFSET.set(status.offset_s)
        with self._lock:
            was = self._status.trusted if self._checked_at else None
            self._status, self._checked_at = status, time.monotonic()
        self._journal.record(found, status)
        if status.trusted is not was:
            level = logging.INFO if status.trusted else logging.WARNING
            decision = {"trusted": status.trusted, "reason": status.reason}
            log.log(level, "TSA clock decision", extra=decision)
        return status

    def decide(self, found: list[Measurement]) -> ClockStatus:
        vouching = [m for m in found if m.result == "vouches"]
        answered = [m.offset_s for m in found if m.offset_s is not None]
        offset = statistics.median(answered) if answered else None
        if len(vouching) >= self._quorum:
            median = statistics.median(m.offset_s or 0.0 for m in vouching)
            worst = max(m.bound_s or 0.0 for m in vouching)
            return ClockStatus(
                True,
                median,
                f"{len(vouching)} of {len(found)} clock sources show the local clock within "
                f"{worst:.3f} s of their time (bound {self._max_offset_s:.3f} s)",
            )
        failing = "; ".join(m.describe() for m in found if m.result != "vouches")
        return ClockStatus(
            False,
            offset,
            f"only {len(vouching)} of {len(found)} clock sources show the local clock within "
            f"clock_max_offset_ms ({self._max_offset_s * 1000:.0f} ms), {self._quorum} needed: "
            f"{failing}",
        )

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                status = self.check()
            except Exception:
                # A bug here must not leave a stale "trusted": status() ages it out.
                log.exception("clock check failed unexpectedly")
            else:
                metrics.CLOCK_TRUSTED.set(1 if status.trusted else 0)
            self._stop.wait(self._interval_s)

    def status(self) -> ClockStatus:
        with self._lock:
            status, checked_at = self._status, self._checked_at
        if not checked_at:
            return status
        age = time.monotonic() - checked_at
        if age > 3 * self._interval_s:
            metrics.CLOCK_TRUSTED.set(0)
            return ClockStatus(
                False,
                status.offset_s,
                f"the last synchronisation check is {age:.1f} s old, more than three "
                f"clock_check_interval_s ({3 * self._interval_s:.1f} s)",
            )
        return status

    def close(self) -> None:
        self._stop.set()
        self._pool.shutdown(wait=False)
        self._journal.close()


def parse_source(reference: str) -> Source:
    url = urlsplit(reference)
    if url.scheme != "ntp" or not url.hostname:
        raise ValueError("each clock source must be ntp://host[:port]")
    return Source(reference, url.hostname, url.port or 123)


def from_settings(
    references: list[str],
    max_offset_ms: int,
    interval_s: float,
    quorum: int = 0,
    journal_file: Path | None = None,
    accuracy_ms: int = 1000,
) -> ClockCheck:
    if not references:
        return LocalClock()
    if max_offset_ms > accuracy_ms:
        raise ValueError("clock_max_offset_ms must not exceed tsa_accuracy_ms (what tokens claim)")
    sources = [parse_source(r) for r in references]
    return NtpEnsemble(
        sources,
        max_offset_ms / 1000,
        interval_s,
        quorum or len(sources) // 2 + 1,
        ClockJournal(journal_file),
    )
