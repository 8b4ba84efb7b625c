"""Witnesses of the log's tree heads outside the database, besides the
append-only file: syslog (a local or remote collector, UDP or a unix
datagram socket) and an HTTP(S) endpoint (another provider's, an auditor's)
that receives a POST of each published head line.

Publishing never blocks the log: each witness has its own queue and thread,
which retries with a doubling delay (1 s up to 5 min) until the witness
takes the head; whatever goes wrong (an error, an answer that is not HTTP, a
redirect, which is refused) is a failed attempt, never the thread's end. A
failure shows in ``lre_tree_head_witness_failures_total`` and a warning;
heads waiting in ``lre_tree_head_witness_pending``, the oldest since
``lre_tree_head_witness_oldest_pending_timestamp_seconds`` (0: none), which
an alert watches. A process
that stops with heads pending loses them for that witness only: the next
head it publishes covers every earlier one (each names its predecessor and
the log is append-only), and the file and the database keep them all."""

from __future__ import annotations

import base64
import collections
import datetime as dt
import hashlib
import json
import logging
import re
import socket
import threading
import time
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from prometheus_client import Counter, Gauge

from lre.server.adapters import outbound

logger = logging.getLogger("lre.witness")

PUBLISHED = Counter("lre_tree_head_witness_published", "Tree heads a witness took.", ["witness"])
FAILURES = Counter(
    "lre_tree_head_witness_failures",
    "Failed attempts to hand a tree head to a witness (each is retried).",
    ["witness"],
)
PENDING = Gauge("lre_tree_head_witness_pending", "Tree heads waiting for a witness.", ["witness"])
OLDEST = Gauge(
    "lre_tree_head_witness_oldest_pending_timestamp_seconds",
    "When the oldest head still waiting for a witness was handed to it (0: none waits).",
    ["witness"],
)
# Every kind exposed from the start (at 0), so that rates and alerts see it.
for _kind in ("syslog", "http"):
    PUBLISHED.labels(_kind), FAILURES.labels(_kind), PENDING.labels(_kind), OLDEST.labels(_kind)
# Beyond this many heads waiting, the oldest is dropped (a later head covers it).
MAX_PENDING = 10_000
FIRST_RETRY_S, MAX_RETRY_S = 1.0, 300.0
# RFC 5424 PRI: facility local0 (16), severity informational (6).
SYSLOG_PRI = 16 * 8 + 6


class Witness(Protocol):
    # Its kind as metrics and logs name it ("syslog", "http"): never the URL
    # (it may carry a token).
    kind: str

    def send(self, line: bytes) -> None:
        """Raises OSError (or a subclass) when the witness did not take it."""
        ...


class SyslogWitness:
    """``syslog+udp://host:port`` or ``syslog+unix:///dev/log``: one RFC 5424
    message per head, MSGID ``lre-tree-head``, its number, size, root and the
    SHA-256 of its document and seal as JSON (a head's seal is kilobytes,
    more than a syslog relay is sure to carry; the file and the HTTP witness
    get the whole line)."""

    kind = "syslog"

    def __init__(self, target: str) -> None:
        parts = urlsplit(target)
        if parts.scheme == "syslog+udp":
            if not parts.hostname:
                raise ValueError("syslog+udp://host:port")
            self._family = socket.AF_INET6 if ":" in parts.hostname else socket.AF_INET
            self._address: str | tuple[str, int] = (parts.hostname, parts.port or 514)
        elif parts.scheme == "syslog+unix":
            if not parts.path:
                raise ValueError("syslog+unix:///path/of/the/socket")
            self._family, self._address = socket.AF_UNIX, parts.path
        else:
            raise ValueError("syslog+udp://host:port or syslog+unix:///path")
        self._host = socket.gethostname()

    def send(self, line: bytes) -> None:
        with socket.socket(self._family, socket.SOCK_DGRAM) as sock:
            sock.sendto(self.message(line), self._address)

    def message(self, line: bytes) -> bytes:
        head = json.loads(line)
        document = head["document"].encode()
        summary = {
            "number": head["number"],
            "treeSize": head["treeSize"],
            "rootHash": head["rootHash"],
            "documentSha256": hashlib.sha256(_b64(document)).hexdigest(),
            "sealSha256": hashlib.sha256(_b64(head["seal"].encode())).hexdigest(),
        }
        now = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        text = json.dumps(summary, sort_keys=True, separators=(",", ":"))
        return f"<{SYSLOG_PRI}>1 {now} {self._host} lre-server - lre-tree-head - {text}".encode()


def _b64(data: bytes) -> bytes:
    return base64.b64decode(data)


class HttpWitness:
    """An HTTP(S) endpoint: a POST of the head's line (application/json); any
    2xx answer is taken; anything else (a redirect too: a 302 would turn the
    POST into a GET without the head) is retried. The operator configures
    the URL, so any address is taken, resolved at each attempt."""

    kind = "http"

    def __init__(
        self, url: str, timeout_s: float = 10.0, resolve: outbound.Resolver | None = None
    ) -> None:
        if urlsplit(url).scheme not in ("http", "https"):
            raise ValueError("an http:// or https:// URL")
        self._url = url
        self._timeout_s = timeout_s
        self._resolve = resolve

    def send(self, line: bytes) -> None:
        where = outbound.destination(self._url, self._resolve)
        headers = {"Content-Type": "application/json", "User-Agent": "lre-server"}
        outbound.post(where, line, headers, self._timeout_s)


class WitnessPublisher:
    """Hands each head line to every witness, each on its own thread."""

    def __init__(
        self,
        witnesses: list[Witness],
        first_retry_s: float = FIRST_RETRY_S,
        max_retry_s: float = MAX_RETRY_S,
    ) -> None:
        self._queues = [_Queue(w, first_retry_s, max_retry_s) for w in witnesses]

    def publish(self, line: bytes) -> None:
        for queue in self._queues:
            queue.put(line)

    def close(self) -> None:
        for queue in self._queues:
            queue.close()


class _Queue:
    def __init__(self, witness: Witness, first_retry_s: float, max_retry_s: float) -> None:
        self._witness = witness
        self._first, self._max = first_retry_s, max_retry_s
        # Each head with when it was handed over (time.time()).
        self._lines: collections.deque[tuple[bytes, float]] = collections.deque()
        self._ready = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"witness-{witness.kind}", daemon=True
        )
        self._thread.start()

    def put(self, line: bytes) -> None:
        with self._ready:
            if len(self._lines) >= MAX_PENDING:
                self._lines.popleft()
                logger.warning(
                    "a tree head was dropped for a witness", extra={"witness": self._witness.kind}
                )
            self._lines.append((line, time.time()))
            self._gauges()
            self._ready.notify()

    def _gauges(self) -> None:
        """Under the condition's lock."""
        kind = self._witness.kind
        PENDING.labels(kind).set(len(self._lines))
        OLDEST.labels(kind).set(self._lines[0][1] if self._lines else 0)

    def close(self) -> None:
        self._stop.set()
        with self._ready:
            self._ready.notify()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        kind = self._witness.kind
        delay = self._first
        while not self._stop.is_set():
            with self._ready:
                while not self._lines and not self._stop.is_set():
                    self._ready.wait()
                if self._stop.is_set():
                    return
                entry = self._lines[0]
            try:
                self._witness.send(entry[0])
            except Exception as exc:  # the thread outlives any answer or bug
                FAILURES.labels(kind).inc()
                reason = exc.reason if isinstance(exc, outbound.OutboundError) else ""
                logger.warning(
                    "tree head not taken by a witness; will retry",
                    extra={
                        "witness": kind,
                        "error_type": type(exc).__name__,
                        "reason": reason,
                        "retry_s": delay,
                    },
                )
                self._stop.wait(delay)
                delay = min(delay * 2, self._max)
                continue
            delay = self._first
            PUBLISHED.labels(kind).inc()
            with self._ready:
                if self._lines and self._lines[0] is entry:
                    self._lines.popleft()
                self._gauges()


def witnesses_from(targets: list[str]) -> list[Witness]:
    """``syslog+udp://``, ``syslog+unix://``, ``http(s)://`` targets (ValueError if another)."""
    found: list[Witness] = []
    for target in targets:
        if target.startswith("syslog+"):
            found.append(SyslogWitness(target))
        else:
            found.append(HttpWitness(target))
    return found


def split_targets(text: str) -> tuple[Path | None, list[str]]:
    """``tree_head_export``: the export directory (at most one) and the other
    witnesses (syslog+udp://, syslog+unix://, http(s)://); ValueError says
    what is wrong."""
    directory: Path | None = None
    others = []
    for target in (t.strip() for t in text.split(",")):
        if not target:
            continue
        if re.match(r"(syslog\+(udp|unix)|https?)://", target):
            others.append(target)
        elif "://" in target:
            raise ValueError("a directory, syslog+udp://, syslog+unix:// or http(s):// targets")
        elif directory is not None:
            raise ValueError("one directory at most")
        else:
            directory = Path(target)
    return directory, others
