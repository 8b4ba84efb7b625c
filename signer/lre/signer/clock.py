"""Whether the TSA may issue time: a pluggable check of the local clock.

A TSA must not issue time it cannot trust (ETSI EN 319 421 7.7.2): when the
clock is not known to be in sync it refuses with PKIStatus rejection,
failInfo timeNotAvailable.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

import ntplib

from lre.signer import metrics

log = logging.getLogger("lre.signer.clock")


@dataclass(frozen=True)
class ClockStatus:
    trusted: bool
    offset_s: float | None
    reason: str


class ClockCheck(Protocol):
    def status(self) -> ClockStatus: ...

    def close(self) -> None: ...


class LocalClock:
    """Trusts the host clock. For development: production configures a reference."""

    def __init__(self) -> None:
        log.warning("TSA clock is not checked against a reference (clock_reference unset)")
        metrics.CLOCK_TRUSTED.set(1)

    def status(self) -> ClockStatus:
        return ClockStatus(True, None, "local clock trusted by configuration")

    def close(self) -> None:
        pass


class NtpReference:
    """Measures the offset against an NTP server in the background.

    Trusted only while the last measurement is recent (three intervals) and
    within ``max_offset_s``; untrusted until the first measurement.
    """

    def __init__(self, host: str, port: int, max_offset_s: float, interval_s: float) -> None:
        self._host, self._port = host, port
        self._max_offset_s = max_offset_s
        self._interval_s = interval_s
        self._client = ntplib.NTPClient()
        self._offset: float | None = None
        self._measured_at = 0.0
        self._stop = threading.Event()
        metrics.CLOCK_TRUSTED.set(0)
        self._thread = threading.Thread(target=self._run, name="clock-check", daemon=True)
        self._thread.start()

    def measure(self) -> None:
        try:
            response = self._client.request(self._host, port=self._port, version=4, timeout=2)
        except (ntplib.NTPException, OSError) as exc:
            log.warning("clock reference unreachable", extra={"error_type": type(exc).__name__})
            return
        self._offset = float(response.offset)
        self._measured_at = time.monotonic()
        metrics.CLOCK_OFFSET.set(self._offset)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.measure()
            metrics.CLOCK_TRUSTED.set(1 if self.status().trusted else 0)
            self._stop.wait(self._interval_s)

    def status(self) -> ClockStatus:
        if self._offset is None:
            return ClockStatus(False, None, "no measurement against the reference clock yet")
        if time.monotonic() - self._measured_at > 3 * self._interval_s:
            return ClockStatus(
                False, self._offset, "last measurement against the reference is stale"
            )
        if abs(self._offset) > self._max_offset_s:
            return ClockStatus(False, self._offset, "clock offset exceeds the configured maximum")
        return ClockStatus(True, self._offset, "in sync with the reference clock")

    def close(self) -> None:
        self._stop.set()


def from_settings(reference: str, max_offset_ms: int, interval_s: float) -> ClockCheck:
    if not reference:
        return LocalClock()
    url = urlsplit(reference)
    if url.scheme != "ntp" or not url.hostname:
        raise ValueError("clock_reference must be empty or ntp://host[:port]")
    return NtpReference(url.hostname, url.port or 123, max_offset_ms / 1000, interval_s)
