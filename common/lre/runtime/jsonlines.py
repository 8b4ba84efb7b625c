"""Structured JSON logs, one object per line, with the request id in context."""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time
import traceback

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
