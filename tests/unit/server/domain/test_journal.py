"""The journal's entries: closed field sets, strings only, keyed hashes."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from lre.server.domain import journal
from lre.server.domain.log import FORMAT, LogKind

AT = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


def test_every_kind_has_its_fields() -> None:
    assert set(journal.FIELDS) == set(LogKind)


def test_an_entry_carries_exactly_its_kind_s_fields_as_strings() -> None:
    record = journal.entry(
        LogKind.AUTHENTICATION_FAILED,
        "parties/1",
        AT,
        purpose="session",
        reason="wrong_credentials",
        failedAttempts=3,
    )
    leaf = json.loads(record.leaf())
    assert leaf == {
        "format": FORMAT,
        "kind": "authentication_failed",
        "subject": "parties/1",
        "eventTime": "2026-03-01T12:00:00.000000Z",
        "purpose": "session",
        "reason": "wrong_credentials",
        "failedAttempts": "3",
    }
    assert journal.problems(LogKind.AUTHENTICATION_FAILED, leaf) == []
    with pytest.raises(AssertionError):  # a field the kind lacks never gets written
        journal.entry(LogKind.PASSWORD_SET, "parties/1", AT, password="hunter2")


def test_problems_name_missing_extra_and_non_string_fields() -> None:
    leaf: dict[str, object] = {
        "format": FORMAT,
        "kind": "locked_out",
        "subject": "parties/1",
        "eventTime": "x",
    }
    assert journal.problems(LogKind.LOCKED_OUT, leaf) == ["lacks lockedUntil, purpose"]
    leaf |= {"purpose": "session", "lockedUntil": 5, "email": "a@b.example"}
    assert journal.problems(LogKind.LOCKED_OUT, leaf) == [
        "carries email, which its kind does not have",
        "has a field that is not a string",
    ]


def test_keyed_hashes_are_separated_by_field_and_key() -> None:
    key, other = bytes(32), bytes(range(32))
    value = journal.keyed(key, "session", b"token-hash")
    assert value != journal.keyed(key, "eid-subject", b"token-hash")
    assert value != journal.keyed(other, "session", b"token-hash")
    assert value == journal.keyed(key, "session", b"token-hash") and len(value) == 64
