"""A deposit reads its client's content with no transaction open (into an
encrypted spool), then writes in one short transaction that checks again:
over SQLite and PostgreSQL and the real signer. What the client's stream does
is played here by the chunk iterator, which runs while the server waits on it."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from lre.server.adapters.signer import ContentKeys, letter_key_context
from lre.server.domain.errors import DependencyUnavailable, DepositRefused
from lre.server.domain.letters import EvidenceEvent, LetterState, PartyKind
from lre.server.services.custody import DeclaredPart, DepositService, MailingService
from lre.server.services.custody.content import SPOOL_MEMORY_BYTES, decrypt_content
from lre.server.services.identity import NewParty
from lre.server.storage import db, models
from lre.server.storage.evidence import ChargeRepository
from tests.support.databases import idle_in_transaction
from tests.support.world import World

# Larger than what a spool keeps in memory: it goes to a file.
LARGE = SPOOL_MEMORY_BYTES + 300 * 1024
MARK = b"PLAINTEXT-MARK-"


def _content(size: int) -> bytes:
    return (MARK + os.urandom(49)) * (size // 64) + b"x" * (size % 64)


def _chunks(data: bytes, during: list[Callable[[], object]]) -> Iterator[tuple[int, bytes]]:
    """``data`` in 256 KB chunks; after each, the next of ``during`` (callables)
    runs: what happens while the server waits on its client."""
    for offset in range(0, len(data), 256 * 1024):
        yield 0, data[offset : offset + 256 * 1024]
        if during:
            during.pop(0)()


def _spool_files(directory: Path) -> list[str]:
    """Files of this process open in ``directory`` (a spool's has no name)."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(directory)):
            found.append(f"/proc/self/fd/{fd}")
    return found


def _counts(world: World) -> dict[str, int]:
    with db.sessions(world.engine)() as session:
        return {
            model.__tablename__: session.scalar(select(func.count()).select_from(model)) or 0
            for model in (
                models.Letter,
                models.ContentChunk,
                models.Evidence,
                models.Charge,
                models.OutboxMessage,
                models.Mailing,
                models.MailingChunk,
            )
        }


def test_while_the_content_arrives_nothing_is_held_and_the_deposit_is_dated_once_it_is_in(
    world: World, database_url: str, tmp_path: Path
) -> None:
    tmp_path = tmp_path / "spool"
    tmp_path.mkdir()
    deposits = DepositService(
        world.stores,
        ContentKeys(world.signer),
        world.evidence,
        world.policy,
        world.clock,
        str(tmp_path),
    )
    data = _content(LARGE)
    seen: dict[str, Any] = {}

    def meanwhile() -> None:
        # On SQLite a transaction open on the stalled deposit would hold the
        # write lock: this deposit, on the same thread, would wait for it.
        seen["other"] = world.deposit("meanwhile").id
        if database_url.startswith("postgresql"):
            seen["idle"] = idle_in_transaction(database_url)
        # The spool is on disk by now, and holds no plaintext.
        files = _spool_files(tmp_path)
        seen["files"] = len(files)
        seen["plaintext"] = any(MARK in Path(f).read_bytes() for f in files)

    def later() -> None:
        world.clock.advance(minutes=10)
        seen["in"] = world.clock.now

    during: list[Callable[[], object]] = [
        lambda: None,
        lambda: None,
        lambda: None,
        lambda: None,
        meanwhile,
        later,
    ]
    before = world.clock.now
    letter, parts = deposits.deposit(
        world.session,
        "slow",
        world.recipient.id,
        [DeclaredPart("big.pdf", "application/pdf", len(data))],
        _chunks(data, during),
    )
    assert seen["other"] and seen.get("idle", 0) == 0
    assert seen["files"] == 1 and seen["plaintext"] is False
    assert _spool_files(tmp_path) == [] and os.listdir(tmp_path) == []
    # Dated when the content was in, not when the call began; the proof agrees.
    assert letter.deposit_time == seen["in"] > before
    assert world.letter(letter.id).deposit_time == seen["in"]
    with db.sessions(world.engine)() as session:
        evidence = session.query(models.Evidence).filter_by(letter_id=letter.id).one()
        assert evidence.event == EvidenceEvent.SUBMISSION_ACCEPTANCE
        assert evidence.event_time == seen["in"]
    # The content reads back whole, under the letter's key.
    with world.stores.read() as store:
        assert store.letters.parts(letter.id) == parts
    stored = world.letter(letter.id)
    assert stored.wrapped_key is not None
    key = world.signer.unwrap_key(stored.wrapped_key, letter_key_context(letter.id))
    with world.stores.read() as store:
        assert b"".join(d for _, d in decrypt_content(store.content, letter.id, key)) == data


def test_a_mailing_reads_its_content_with_nothing_held_and_is_dated_once_it_is_in(
    world: World, database_url: str, tmp_path: Path
) -> None:
    tmp_path = tmp_path / "spool"
    tmp_path.mkdir()
    mailings = MailingService(
        world.stores, world.signer, world.evidence, world.policy, world.clock, str(tmp_path)
    )
    data = _content(LARGE)
    seen: dict[str, Any] = {}

    def meanwhile() -> None:
        seen["other"] = world.deposit("meanwhile").id
        if database_url.startswith("postgresql"):
            seen["idle"] = idle_in_transaction(database_url)
        seen["files"] = len(_spool_files(tmp_path))

    def later() -> None:
        world.clock.advance(minutes=10)
        seen["in"] = world.clock.now

    during: list[Callable[[], object]] = [*[lambda: None] * 4, meanwhile, later]
    view = mailings.deposit(
        world.session,
        "slow-mailing",
        "AG",
        [(f"parties/{world.recipient.id}", "lot 1")],
        [DeclaredPart("big.pdf", "application/pdf", len(data))],
        _chunks(data, during),
    )
    assert seen["other"] and seen.get("idle", 0) == 0 and seen["files"] == 1
    assert _spool_files(tmp_path) == [] and os.listdir(tmp_path) == []
    (row,) = view.recipients
    assert row.letter_id is not None
    assert view.mailing.deposit_time == seen["in"]
    assert world.letter(row.letter_id).deposit_time == seen["in"]
    with db.sessions(world.engine)() as session:
        evidence = session.query(models.Evidence).filter_by(letter_id=row.letter_id).one()
        assert evidence.event_time == seen["in"]
        stored = session.scalar(
            select(func.count())
            .select_from(models.MailingChunk)
            .where(models.MailingChunk.mailing_id == view.mailing.id)
        )
    assert stored == -(-len(data) // (256 * 1024))


def test_a_consent_withdrawn_while_the_content_arrives_refuses_the_deposit(
    world: World,
) -> None:
    consumer = world.identity.parties.create(
        "gateway",
        "consumer",
        NewParty(
            PartyKind.NATURAL_PERSON,
            False,
            "zoe@example.org",
            given_name="Zoe",
            family_name="Martin",
        ),
    )
    sender_id = uuid.UUID(world.session.party_id)
    consent = world.identity.consents.grant("portal", "c-1", consumer.id, sender_id, "signed form")
    before = _counts(world)
    data = _content(300 * 1024)
    during: list[Callable[[], object]] = [
        lambda: world.identity.consents.withdraw(consumer.id, consent.id)
    ]
    with pytest.raises(DepositRefused) as refused:
        world.deposits.deposit(
            world.session,
            "withdrawn",
            consumer.id,
            [DeclaredPart("a.pdf", "application/pdf", len(data))],
            _chunks(data, during),
        )
    assert refused.value.code == "consent_missing"
    after = _counts(world)
    # Only the refused letter's row and its sealed SubmissionRejection (and its log entry).
    assert after["letters"] == before["letters"] + 1
    assert after["evidence"] == before["evidence"] + 1
    for table in ("content_chunks", "charges", "outbox_messages"):
        assert after[table] == before[table], table
    with db.sessions(world.engine)() as session:
        letter = session.query(models.Letter).filter_by(request_id="withdrawn").one()
        assert letter.state == LetterState.REJECTED
        (evidence,) = session.query(models.Evidence).filter_by(letter_id=letter.id)
        assert evidence.event == EvidenceEvent.SUBMISSION_REJECTION
    # A retry gets the same refusal.
    with pytest.raises(DepositRefused) as again:
        world.deposits.deposit(
            world.session,
            "withdrawn",
            consumer.id,
            [DeclaredPart("a.pdf", "application/pdf", len(data))],
            iter([(0, data)]),
        )
    assert again.value.letter == refused.value.letter


class ClientGone(Exception):
    """What the stream raises when the client cancels or its deadline passes."""


def _gone() -> None:
    raise ClientGone()


def _signer_down(*_: object) -> object:
    raise DependencyUnavailable("the signer is unavailable")


def _database_lost(*_: object) -> object:
    raise OperationalError("INSERT INTO charges", {}, Exception("connection lost"))


@pytest.mark.parametrize("failure", ["client gone", "signer down", "database error"])
def test_a_deposit_that_fails_anywhere_writes_nothing_and_leaves_no_spool(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: str
) -> None:
    tmp_path = tmp_path / "spool"
    tmp_path.mkdir()
    deposits = DepositService(
        world.stores,
        ContentKeys(world.signer),
        world.evidence,
        world.policy,
        world.clock,
        str(tmp_path),
    )
    mailings = MailingService(
        world.stores, world.signer, world.evidence, world.policy, world.clock, str(tmp_path)
    )
    world.deposit("first")  # the tables are not empty: what counts is that nothing is added
    before = _counts(world)
    during: list[Callable[[], object]] = [lambda: None for _ in range(5)]
    if failure == "client gone":
        during.append(_gone)
        expected: type[Exception] = ClientGone
    elif failure == "signer down":
        # The content is in; then the seal of the proof of deposit fails.
        monkeypatch.setattr(world.evidence, "seal_many", _signer_down)
        expected = DependencyUnavailable
    else:
        # The last write of the transaction fails: everything before it goes too.
        monkeypatch.setattr(ChargeRepository, "add", _database_lost)
        expected = OperationalError
    data = _content(LARGE)
    with pytest.raises(expected):
        deposits.deposit(
            world.session,
            f"fails-{failure}",
            world.recipient.id,
            [DeclaredPart("big.pdf", "application/pdf", len(data))],
            _chunks(data, list(during)),
        )
    assert _spool_files(tmp_path) == [] and os.listdir(tmp_path) == []
    with pytest.raises(expected):
        mailings.deposit(
            world.session,
            f"fails-mailing-{failure}",
            "AG",
            [(f"parties/{world.recipient.id}", "lot 1")],
            [DeclaredPart("big.pdf", "application/pdf", len(data))],
            _chunks(data, list(during)),
        )
    assert _spool_files(tmp_path) == [] and os.listdir(tmp_path) == []
    assert _counts(world) == before
    monkeypatch.undo()
    # Nothing was left behind that stops the same requests now.
    assert (
        deposits.deposit(
            world.session,
            f"fails-{failure}",
            world.recipient.id,
            [DeclaredPart("big.pdf", "application/pdf", len(data))],
            _chunks(data, []),
        )[0].state
        is LetterState.DEPOSITED
    )
