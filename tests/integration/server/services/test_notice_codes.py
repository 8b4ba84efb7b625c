"""Wrong notice verification codes on SQLite and PostgreSQL: counted per
recipient and source, journaled against the recipient, and throttled: the
source that keeps guessing is locked out of that notice (RESOURCE_EXHAUSTED
with when to retry), even with the right code; another source (the
recipient's own portal user) is not. A reference that names no letter is
only counted. A caller cycling the end users it forwards meets a ceiling."""

from __future__ import annotations

import itertools
import json

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select

from lre.server.domain.errors import FailedPrecondition, NotFound, TooManyAttempts
from lre.server.domain.identity import Source
from lre.server.services.identity.throttles import CALLER_CEILING_FACTOR
from lre.server.services.notice_codes import NoticeCodes
from lre.server.services.notification import NotificationPolicy, NotificationService
from lre.server.storage import db, models
from tests.support.parties import outbox_enrolment_code
from tests.support.services import KEY
from tests.support.world import World

GUESSER, OTHER = Source.of("gateway"), Source.of("portal", "198.51.100.2")
RECIPIENT = Source.of("portal", "203.0.113.7")


def _notice_entries(world: World) -> list[dict[str, str]]:
    with db.sessions(world.engine)() as session:
        leaves = session.scalars(
            select(models.LogEntry.leaf).where(models.LogEntry.letter_id.is_(None))
        )
        found = [json.loads(leaf) for leaf in leaves]
    return [e for e in found if e.get("purpose") == "notice_code"]


def _failures(which: str) -> float:
    return REGISTRY.get_sample_value("lre_notice_code_failures_total", {"reference": which}) or 0


def test_a_code_in_other_characters_is_a_wrong_code_counted(world: World, smtp_port: int) -> None:
    """Codes are ASCII: fullwidth letters or an accent are a wrong code, the
    same NOT_FOUND as any, counted against the source (not an error)."""
    (letter,) = world.notified(1, smtp_port)
    code = world.notifications.verification_code(letter.id)
    known = _failures("known")
    fullwidth = "".join(chr(ord(c) + 0xFEE0) if c.isalnum() else c for c in code)
    for wrong in ("é", fullwidth, code + "é"):
        with pytest.raises(NotFound):
            world.notifications.claim(letter.reference, wrong, GUESSER)
        assert not world.notifications.verify(letter.reference, wrong, GUESSER).genuine
    assert _failures("known") == known + 6


def test_a_source_guessing_codes_is_locked_out_of_that_notice_only(
    world: World, smtp_port: int
) -> None:
    (letter,) = world.notified(1, smtp_port)
    code = world.notifications.verification_code(letter.id)
    known, unknown = _failures("known"), _failures("unknown")
    threshold = 10
    for attempt in range(1, threshold):
        with pytest.raises(NotFound):
            world.notifications.claim(letter.reference, f"WRONG-{attempt:04d}", GUESSER)
    assert not world.notifications.verify(letter.reference, "WRONG-9999", OTHER).genuine
    with pytest.raises(TooManyAttempts) as raised:
        world.notifications.claim(letter.reference, "WRONG-0010", GUESSER)
    assert raised.value.retry_after == 15 * 60
    # Locked out even with the right code; the recipient's own source is not.
    with pytest.raises(TooManyAttempts):
        world.notifications.claim(letter.reference, code, GUESSER)
    assert world.notifications.claim(letter.reference, code, RECIPIENT).letter_id == letter.id
    assert world.notifications.verify(letter.reference, code, RECIPIENT).genuine
    assert _failures("known") == known + threshold + 1
    entries = _notice_entries(world)
    assert all(e["subject"] == f"parties/{letter.recipient_id}" for e in entries)
    # Each names the letter: wrong codes are counted per reference.
    assert all(e["letter"] == f"letters/{letter.id}" for e in entries)
    assert [e["kind"] for e in entries].count("authentication_failed") >= threshold + 1
    assert [e["kind"] for e in entries].count("locked_out") == 1
    # A reference that names no letter: counted, not journaled.
    with pytest.raises(NotFound):
        world.notifications.claim("LRE-NOPE-0000", code, GUESSER)
    assert _failures("unknown") == unknown + 1
    assert len(_notice_entries(world)) == len(entries)


def test_a_caller_cycling_end_users_meets_its_notice_ceiling_and_no_other_caller_does(
    world: World, smtp_port: int
) -> None:
    """Its wrong codes against one recipient are counted together, each end
    user's once (none locked out on its own); at the ceiling the caller, all
    its end users, is locked out of the recipient's notices, and nobody else.
    A right code through it clears its count; the unlock code asked for
    through it lifts the lock."""
    (letter,) = world.notified(1, smtp_port)
    code = world.notifications.verification_code(letter.id)
    threshold = 2
    notices = NotificationService(
        world.stores,
        NotificationPolicy(KEY, "LRE <notifications@lre.test>", "https://portal.lre.test"),
        world.proofs,
        NoticeCodes(threshold, clock=world.clock),
    )
    ceiling = threshold * CALLER_CEILING_FACTOR
    forwarded = (Source.of("gateway", f"2001:db8::{n:x}") for n in itertools.count(1))

    def guesses(count: int) -> list[bool]:
        return [
            notices.verify(letter.reference, "WRONG-CODE", next(forwarded)).genuine
            for _ in range(count)
        ]

    assert guesses(ceiling - 1) == [False] * (ceiling - 1)
    assert notices.verify(letter.reference, code, next(forwarded)).genuine  # clears the count
    assert guesses(ceiling - 1) == [False] * (ceiling - 1)
    with pytest.raises(TooManyAttempts) as raised:
        guesses(1)
    assert raised.value.retry_after == 15 * 60
    with pytest.raises(TooManyAttempts):  # any end user of it, even with the right code
        notices.claim(letter.reference, code, next(forwarded))
    # Another caller is not locked out: nothing for it to unlock either.
    assert notices.claim(letter.reference, code, RECIPIENT).letter_id == letter.id
    with pytest.raises(FailedPrecondition):
        world.identity.unlocks.send_code(letter.recipient_id, RECIPIENT)
    locked = [e for e in _notice_entries(world) if e["kind"] == "locked_out"]
    assert [(e["scope"], e["letter"]) for e in locked] == [("caller", f"letters/{letter.id}")]

    asking = next(forwarded)
    code_id, _expiry = world.identity.unlocks.send_code(letter.recipient_id, asking)
    unlock_code = outbox_enrolment_code(world.engine, KEY, str(letter.recipient_id), "unlock")
    world.identity.unlocks.unlock(letter.recipient_id, code_id, unlock_code, asking)
    assert notices.claim(letter.reference, code, next(forwarded)).letter_id == letter.id
