"""What the custody servicer shows of a letter, to its sender and its recipient."""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid

import pytest

from lre.server.api.convert import letter_message
from lre.server.domain.letters import LetterState
from lre.server.domain.records import LetterRecord, PartRecord

SENDER, RECIPIENT = uuid.uuid4(), uuid.uuid4()
LETTER_ID = uuid.uuid4()
PARTS = [
    PartRecord(LETTER_ID, 0, "mise-en-demeure.pdf", "application/pdf", 10, b"\x01" * 32),
    PartRecord(LETTER_ID, 1, "annexe.txt", "text/plain", 3, hashlib.sha256(b"abc").digest()),
]


def _letter(state: LetterState) -> LetterRecord:
    return LetterRecord(
        LETTER_ID, "ABCDEFGHJKLM", SENDER, RECIPIENT, "r", state, dt.datetime.now(dt.UTC)
    )


@pytest.mark.parametrize(
    "state",
    [LetterState.DEPOSITED, LetterState.NOTIFIED, LetterState.REFUSED, LetterState.EXPIRED],
)
def test_before_acceptance_the_recipient_sees_neutral_labels_and_no_sender(
    state: LetterState,
) -> None:
    message = letter_message(_letter(state), PARTS, RECIPIENT)
    assert message.sender == ""
    assert [p.filename for p in message.parts] == ["part 1", "part 2"]
    assert [p.size_bytes for p in message.parts] == [10, 3]
    assert all(not p.media_type and not p.HasField("digest") for p in message.parts)
    shown = message.SerializeToString()
    for part in PARTS:
        assert part.filename.encode() not in shown and part.sha256 not in shown


def test_after_acceptance_the_recipient_sees_names_and_digests() -> None:
    message = letter_message(_letter(LetterState.ACCEPTED), PARTS, RECIPIENT)
    assert message.sender == f"parties/{SENDER}"
    assert [(p.filename, p.media_type, p.digest.value) for p in message.parts] == [
        (p.filename, p.media_type, p.sha256) for p in PARTS
    ]


def test_the_sender_always_sees_its_own_parts() -> None:
    message = letter_message(_letter(LetterState.NOTIFIED), PARTS, SENDER)
    assert [p.filename for p in message.parts] == [p.filename for p in PARTS]
    assert all(p.HasField("digest") for p in message.parts)
