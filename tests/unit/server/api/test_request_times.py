"""A request's times: what a Timestamp may hold is taken, anything else is
refused naming the field (the conversion itself would fail: INTERNAL)."""

from __future__ import annotations

import datetime as dt

import pytest
from google.protobuf import timestamp_pb2

from lre.server.api.convert import request_time
from lre.server.domain.errors import InvalidArgument


@pytest.mark.parametrize(
    ("seconds", "nanos", "expected"),
    [
        (0, 0, dt.datetime(1970, 1, 1, tzinfo=dt.UTC)),
        (-62135596800, 0, dt.datetime(1, 1, 1, tzinfo=dt.UTC)),
        (253402300799, 999_999_999, dt.datetime(9999, 12, 31, 23, 59, 59, 999999, dt.UTC)),
    ],
)
def test_a_time_a_timestamp_may_hold_is_taken(
    seconds: int, nanos: int, expected: dt.datetime
) -> None:
    stamp = timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos)
    assert request_time(stamp, "start_time") == expected


@pytest.mark.parametrize(
    ("seconds", "nanos"),
    [(2**62, 0), (-62135596801, 0), (253402300800, 0), (1, -1), (1, 10**9), (-(2**63), 0)],
)
def test_a_time_beyond_is_refused_naming_the_field(seconds: int, nanos: int) -> None:
    stamp = timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos)
    with pytest.raises(InvalidArgument) as refused:
        request_time(stamp, "document_expire_time")
    assert refused.value.field == "document_expire_time"
