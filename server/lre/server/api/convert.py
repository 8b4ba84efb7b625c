"""Conversions of record values to protobuf fields, shared by the servicers."""

from __future__ import annotations

import datetime as dt

from google.protobuf import timestamp_pb2


def timestamp(value: dt.datetime | None) -> timestamp_pb2.Timestamp | None:
    if value is None:
        return None
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value)
    return stamp
