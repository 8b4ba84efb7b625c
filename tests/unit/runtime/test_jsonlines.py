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
