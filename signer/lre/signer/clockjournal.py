"""The synchronisation journal: every clock check of the built-in TSA, kept.

An assessor of the TSA (ETSI EN 319 421 7.7.2) is shown that its clock was
within its declared accuracy of UTC whenever it issued time, and what it did
when it was not. Each check is one JSON line: when (UTC), the process, the
decision and its reason, and for each source its result, offset, round trip,
error bound and stratum. Lines are appended (O_APPEND: several signer
processes may share the file, each line one write) and flushed to disk
before the next check. The file is opened at each write, so a rotation
that renames it (logrotate without ``copytruncate``) loses nothing. A
journal that cannot be written is logged and counted, and does not stop
the TSA: the decision stands on the measurements, not on the file.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING

from lre.signer import metrics

if TYPE_CHECKING:
    from lre.signer.clock import ClockStatus, Measurement

log = logging.getLogger("lre.signer.clock")


class ClockJournal:
    def __init__(self, path: Path | None) -> None:
        self._path = path
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)

    def record(self, found: list[Measurement], status: ClockStatus) -> None:
        entry = {
            "time": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
            "pid": os.getpid(),
            "trusted": status.trusted,
            "offset_s": status.offset_s,
            "reason": status.reason,
            "sources": [
                {
                    "source": m.source,
                    "result": m.result,
                    "offset_s": m.offset_s,
                    "delay_s": m.delay_s,
                    "bound_s": m.bound_s,
                    "stratum": m.stratum,
                }
                for m in found
            ],
        }
        if self._path is None:
            log.info("clock check", extra={"check": entry})
            return
        line = (json.dumps(entry, separators=(",", ":")) + "\n").encode()
        try:
            fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            try:
                os.write(fd, line)
                if stat.S_ISREG(os.fstat(fd).st_mode):
                    # A pipe (/dev/stdout to a log collector) has nothing to sync.
                    os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            metrics.CLOCK_JOURNAL_FAILURES.inc()
            log.warning("clock journal not written", extra={"error_type": type(exc).__name__})

    def close(self) -> None:
        pass
