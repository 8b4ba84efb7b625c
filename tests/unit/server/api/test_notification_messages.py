"""What ListNotifications shows of an outbox message: every state it can be
in, and whether it went more than once."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid

import pytest

from lre.server.api.notification import _cursor, _notification
from lre.server.domain.errors import InvalidArgument
from lre.server.domain.letters import OutboxKind, OutboxState
from lre.server.domain.records import MessageRecord
from lre.v1 import notification_pb2

NOW = dt.datetime(2027, 1, 10, 12, tzinfo=dt.UTC)
MESSAGE = MessageRecord(
    uuid.uuid4(), uuid.uuid4(), OutboxKind.LETTER_WAITING, {}, OutboxState.PENDING, 0, NOW, NOW,
    None, None,
)  # fmt: skip


@pytest.mark.parametrize(
    ("state", "attempts", "shown"),
    [
        (OutboxState.PENDING, 0, notification_pb2.DELIVERY_STATE_PENDING),
        (OutboxState.PENDING, 1, notification_pb2.DELIVERY_STATE_RETRYING),
        (OutboxState.SENDING, 1, notification_pb2.DELIVERY_STATE_SENDING),
        (OutboxState.SENT, 1, notification_pb2.DELIVERY_STATE_SENT),
        (OutboxState.FAILED, 3, notification_pb2.DELIVERY_STATE_FAILED),
        (OutboxState.BOUNCED, 1, notification_pb2.DELIVERY_STATE_BOUNCED),
    ],
)
def test_every_state_is_shown(state: OutboxState, attempts: int, shown: int) -> None:
    message = dataclasses.replace(MESSAGE, state=state, attempts=attempts)
    assert _notification(message, "<id@lre.test>").delivery_state == shown


def test_a_resend_after_a_crash_shows() -> None:
    message = dataclasses.replace(
        MESSAGE, state=OutboxState.SENT, attempts=2, resends=1, sent_time=NOW
    )
    shown = _notification(message, "<id@lre.test>")
    assert (shown.attempts, shown.resends) == (2, 1)
    assert {s for s in OutboxState} == {
        OutboxState.PENDING, OutboxState.SENDING, OutboxState.SENT, OutboxState.FAILED,
        OutboxState.BOUNCED,
    }  # fmt: skip


def test_a_cursor_is_ascii_digits_within_64_bits_else_invalid_argument() -> None:
    assert _cursor("") == -1 and _cursor("0") == 0 and _cursor(str(2**63 - 1)) == 2**63 - 1
    for bad in ("9223372036854775808", "1" + "0" * 30, "²", "①", "٣", "-1", " 5", "1e3"):
        with pytest.raises(InvalidArgument) as refused:
            _cursor(bad)
        assert refused.value.field == "cursor"
