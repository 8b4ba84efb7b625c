"""Structured JSON logs, one object per line, with the request id in context."""

from __future__ import annotations

import contextvars
import json
import logging
import os
import re
import sys
import threading
import time
import traceback
from typing import TextIO

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        rid = request_id.get()
        if rid:
            entry["request_id"] = rid
        # Fields passed with `extra=` become top-level keys.
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info and record.exc_info[1] is not None:
            entry["error_type"] = type(record.exc_info[1]).__name__
            entry["traceback"] = frames_only(record.exc_info[1])
        return json.dumps(entry, default=str, ensure_ascii=False)


def frames_only(exc: BaseException) -> str:
    """Where an exception went, and its type, but not its message: messages
    quote values (a driver's SQL parameters, an address an SMTP server
    refused), and no personal data may reach a log line."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or (
            None if current.__suppress_context__ else current.__context__
        )
    lines = []
    for link in reversed(chain):
        lines.extend(traceback.format_tb(link.__traceback__))
        lines.append(f"{type(link).__module__}.{type(link).__qualname__}\n")
    return "".join(lines)


def configure(level: str = "INFO", process: str = "lre") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger(process).debug("logging configured")


# The gRPC core's own line: severity letter, date, time, thread, file:line.
_NATIVE_LINE = re.compile(r"([IWEF])\d{4} [\d:.]+\s+\d+ ([^\]\s]+)\] ?(.*)")
_NATIVE_LEVELS = {
    "I": logging.INFO,
    "W": logging.WARNING,
    "E": logging.ERROR,
    "F": logging.CRITICAL,
}
# absl's notice before its first line: noise on every process's stream.
_NATIVE_NOISE = "All log messages before absl::InitializeLog() is called"


def capture_native_stderr() -> None:
    """What native code writes to file descriptor 2 (the gRPC core's lines,
    as a TLS handshake that failed) becomes JSON lines of the logger
    ``grpc.core``, so that the stream stays JSON only. Python's own stderr
    (the log handler, a crash's traceback) keeps the original descriptor.
    For long-running processes: the descriptor stays redirected until exit."""
    original = os.dup(2)
    read_fd, write_fd = os.pipe()
    os.dup2(write_fd, 2)
    os.close(write_fd)
    stream = os.fdopen(original, "w", buffering=1, encoding="utf-8", errors="replace")
    sys.stderr = stream
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(stream)
    forward = threading.Thread(
        target=_forward, args=(read_fd, stream), name="native-stderr", daemon=True
    )
    forward.start()


def _forward(read_fd: int, stream: TextIO) -> None:
    log = logging.getLogger("grpc.core")
    with os.fdopen(read_fd, "rb") as pipe:
        for raw in pipe:
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if not line.strip() or _NATIVE_NOISE in line:
                continue
            if line.startswith("{"):
                # A child process's JSON line (a pool's workers share the descriptor).
                stream.write(line + "\n")
                continue
            match = _NATIVE_LINE.match(line)
            if match:
                level, source, message = match.groups()
                log.log(_NATIVE_LEVELS[level], message, extra={"source": source})
            else:
                log.warning(line)
