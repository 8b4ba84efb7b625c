"""lre.runtime.jsonlines: one JSON object per line with the request id."""

from __future__ import annotations

import json
import logging

from lre.runtime import jsonlines


def test_json_line_with_request_id_and_extra_fields() -> None:
    record = logging.LogRecord("lre.rpc", logging.INFO, __file__, 1, "rpc", None, None)
    record.method = "/lre.v1.SigningService/Timestamp"
    token = jsonlines.request_id.set("req-42")
    try:
        line = jsonlines.JsonFormatter().format(record)
    finally:
        jsonlines.request_id.reset(token)
    entry = json.loads(line)
    assert entry["request_id"] == "req-42"
    assert entry["method"] == "/lre.v1.SigningService/Timestamp"
    assert entry["level"] == "info" and entry["message"] == "rpc"
    assert "\n" not in line


def test_a_logged_traceback_keeps_frames_and_types_but_no_message() -> None:
    # Values come from variables, as in real code: source lines are shown.
    address, name = "-".join(["dupont", "private@example.org"]), "-".join(["Zoe", "Dupontprivate"])

    def fails() -> None:
        try:
            raise KeyError(address)
        except KeyError as exc:
            raise ValueError(f"INSERT ... ({name!r}, {address!r})") from exc

    try:
        fails()
    except ValueError:
        import sys

        record = logging.LogRecord(
            "lre.rpc", logging.ERROR, __file__, 1, "unhandled error", None, sys.exc_info()
        )
    entry = json.loads(jsonlines.JsonFormatter().format(record))
    assert entry["error_type"] == "ValueError"
    assert "in fails" in entry["traceback"]
    assert "builtins.KeyError" in entry["traceback"] and "builtins.ValueError" in entry["traceback"]
    assert address not in entry["traceback"] and name not in entry["traceback"]
