"""`lre-server move-content`: kept content moved from the database's rows to
the object store (a real SeaweedFS server) and back, each move verified,
a second run finding nothing left to move. SQLite and PostgreSQL."""

from __future__ import annotations

import os

from sqlalchemy import func, select

from lre.server.adapters.signer import ContentKeys
from lre.server.services.custody import DeclaredPart, DepositService, MailingService
from lre.server.services.custody.content_move import Progress, move_content
from lre.server.services.custody.content_store import DatabaseContent, ObjectContent
from lre.server.storage import db, models
from tests.support.mail import Inbox
from tests.support.world import World


def _count(world: World, model: type[models.Base]) -> int:
    with db.sessions(world.engine)() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def test_content_moves_to_the_object_store_and_back_verified_and_resumable(
    object_world: World, smtp_port: int
) -> None:
    world = object_world
    assert isinstance(world.content, ObjectContent) and world.objects is not None
    # Deposited before the switch: in the database's rows.
    before = DatabaseContent()
    deposits = DepositService(
        world.stores,
        ContentKeys(world.signer),
        world.evidence,
        world.policy,
        world.clock,
        content=before,
    )
    mailings = MailingService(
        world.stores, world.signer, world.evidence, world.policy, world.clock, content=before
    )
    data = os.urandom(3 * 1024 * 1024 + 17)
    letter, _ = deposits.deposit(
        world.session,
        "old",
        world.recipient.id,
        [DeclaredPart("old.pdf", "application/pdf", len(data))],
        iter([(0, data[i : i + 1024 * 1024]) for i in range(0, len(data), 1024 * 1024)]),
    )
    view = mailings.deposit(
        world.session,
        "old-mailing",
        "AG",
        [(f"parties/{world.recipient.id}", "lot 1")],
        [DeclaredPart("ag.pdf", "application/pdf", 5)],
        iter([(0, b"%PDF!")]),
    )
    mailed = view.recipients[0].letter_id
    assert mailed is not None
    world.clock.advance(seconds=2)
    with Inbox(smtp_port):
        world.drain()
    for letter_id in (letter.id, mailed):
        world.decisions.accept(world.recipient_session(), letter_id)
    chunks = _count(world, models.ContentChunk), _count(world, models.MailingChunk)

    def read(letter_id: object) -> bytes:
        session = world.recipient_session()
        return b"".join(d for _, d in world.decisions.download(session, letter_id))  # type: ignore[arg-type]

    seen: list[tuple[int, int]] = []

    def report(progress: Progress) -> None:
        seen.append((progress.examined, progress.moved))

    done = move_content(world.stores, world.content, True, 1, report)
    assert (done.examined, done.moved) == (2, 2) and seen[-1] == (2, 2)
    assert _count(world, models.ContentChunk) == 0 and _count(world, models.MailingChunk) == 0
    key = world.letter(letter.id).content_object
    shared = world.objects_of_mailing(view.mailing.id)
    assert key is not None and shared is not None
    assert sorted(world.objects.keys("")) == sorted([key, shared])
    assert world.objects.retention(key) == world.letter(letter.id).content_retain_until
    assert read(letter.id) == data and read(mailed) == b"%PDF!"
    # Resumed (or run again): nothing left to move.
    assert move_content(world.stores, world.content, True, 10, report).moved == 0

    back = move_content(world.stores, world.content, False, 10, report)
    assert back.moved == 2
    assert (_count(world, models.ContentChunk), _count(world, models.MailingChunk)) == chunks
    assert world.letter(letter.id).content_object is None
    assert read(letter.id) == data and read(mailed) == b"%PDF!"
    # The locked objects stay until their retention ends, then the worker deletes them.
    with world.stores.read() as store:
        due = store.objects.due_loose(world.clock.now, 10)
        assert due == [] and store.objects.loose_count() == 2
    assert len(list(world.objects.keys(""))) == 2
