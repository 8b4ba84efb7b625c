"""Letter content kept in the database or in an S3-compatible object store
(a real SeaweedFS server, a fresh bucket with Object Lock per test): the
same deposits, downloads, mailings and failures over both; over SQLite and
PostgreSQL and the real signer."""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select

from lre.server.adapters.object_upload import PART_BYTES
from lre.server.domain.errors import InvalidArgument
from lre.server.domain.letters import LetterState
from lre.server.services.custody import DeclaredPart, MailingService
from lre.server.services.custody.content_store import ObjectContent
from lre.server.services.custody.object_keys import UPLOAD_GRACE
from lre.server.services.custody.retainer import RETAIN_DELAY
from lre.server.storage import db, models
from lre.server.storage.objects import Owner
from lre.server.workers.content_objects import ContentObjects
from tests.support.mail import Inbox
from tests.support.processes import wait_for
from tests.support.seaweed import SeaweedServer
from tests.support.services import Clock
from tests.support.signer import SignerProcess
from tests.support.world import World

MARK = b"PLAINTEXT-MARK-"
# Over one multipart part: the upload has several.
LARGE = PART_BYTES + 700 * 1024


def _content(size: int) -> bytes:
    return (MARK + os.urandom(49)) * (size // 64) + b"x" * (size % 64)


def _chunks(data: bytes, fail_after: int | None = None) -> Iterator[tuple[int, bytes]]:
    for n, offset in enumerate(range(0, len(data), 1024 * 1024)):
        if fail_after is not None and n == fail_after:
            raise ConnectionResetError("the client went away")
        yield 0, data[offset : offset + 1024 * 1024]


def _count(world: World, model: type[models.Base]) -> int:
    with db.sessions(world.engine)() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def _objects(world: World) -> list[str]:
    """Every key in the world's bucket (none without an object store)."""
    if world.objects is None:
        return []
    return list(world.objects.keys(""))


def _downloaded(world: World, letter_id: uuid.UUID) -> bytes:
    return b"".join(d for _, d in world.decisions.download(world.recipient_session(), letter_id))


def _accepted(world: World, data: bytes, smtp_port: int, request_id: str = "big") -> uuid.UUID:
    letter, _ = world.deposits.deposit(
        world.session,
        request_id,
        world.recipient.id,
        [DeclaredPart("big.pdf", "application/pdf", len(data))],
        _chunks(data),
    )
    world.clock.advance(seconds=2)
    with Inbox(smtp_port):
        world.drain()
    world.decisions.accept(world.recipient_session(), letter.id)
    return letter.id


def test_a_letter_is_kept_where_configured_and_reads_back_whole(
    content_world: World, smtp_port: int
) -> None:
    world = content_world
    data = _content(LARGE)
    letter_id = _accepted(world, data, smtp_port)
    assert _downloaded(world, letter_id) == data
    letter = world.letter(letter_id)
    if world.objects is None:
        assert letter.content_object is None and _count(world, models.ContentChunk) > 0
        return
    # One object, named by nothing the letter is known by, holding ciphertext only.
    assert _count(world, models.ContentChunk) == 0
    assert _objects(world) == [letter.content_object]
    key = letter.content_object
    assert key is not None and str(letter_id) not in key and letter.reference not in key
    raw = world.objects.read_range(key, 0, world.objects.size(key))
    assert len(raw) > len(data) and MARK not in raw
    # Nothing loose, and the object is locked until the letter's retention ends.
    assert _count(world, models.LooseObject) == 0
    until = letter.deposit_time + world.policy.content_retention
    assert letter.content_retain_until == until
    assert world.objects.retention(key) == until


def test_a_deposit_whose_client_goes_away_leaves_nothing(content_world: World) -> None:
    world = content_world
    data = _content(LARGE)
    with pytest.raises(ConnectionResetError):
        world.deposits.deposit(
            world.session,
            "gone",
            world.recipient.id,
            [DeclaredPart("big.pdf", "application/pdf", len(data))],
            # After eight 1 MiB chunks: the first part was sent, an upload begun.
            _chunks(data, fail_after=8),
        )
    with pytest.raises(InvalidArgument):
        world.deposits.deposit(
            world.session,
            "short",
            world.recipient.id,
            [DeclaredPart("big.pdf", "application/pdf", len(data) + 1)],
            _chunks(data),
        )
    assert _count(world, models.Letter) == 0 and _count(world, models.ContentChunk) == 0
    assert _objects(world) == []
    if world.objects is None:
        assert _count(world, models.LooseObject) == 0
        return
    assert world.objects.unfinished() == []
    # What stays loose is keys recorded for uploads that never used them: the
    # worker drops their records once due.
    assert isinstance(world.content, ObjectContent)
    world.clock.advance(seconds=UPLOAD_GRACE.total_seconds() + 1)
    ContentObjects(world.content).step()
    assert _count(world, models.LooseObject) == 0


def test_a_mailing_keeps_one_copy_for_its_letters(content_world: World, smtp_port: int) -> None:
    world = content_world
    mailings = MailingService(
        world.stores,
        world.signer,
        world.evidence,
        world.policy,
        world.clock,
        content=world.content,
    )
    data = _content(300 * 1024)
    view = mailings.deposit(
        world.session,
        "mailing",
        "AG",
        [(f"parties/{world.recipient.id}", "lot 1")],
        [DeclaredPart("ag.pdf", "application/pdf", len(data))],
        _chunks(data),
    )
    (row,) = view.recipients
    assert row.letter_id is not None
    world.clock.advance(seconds=2)
    with Inbox(smtp_port):
        world.drain()
    world.decisions.accept(world.recipient_session(), row.letter_id)
    assert _downloaded(world, row.letter_id) == data
    if world.objects is not None:
        assert view.mailing.content_object is not None
        assert _objects(world) == [view.mailing.content_object]
        assert world.letter(row.letter_id).content_object is None
        assert _count(world, models.MailingChunk) == 0


def test_an_upload_never_committed_is_deleted_by_the_worker(object_world: World) -> None:
    """A process that died between its upload and its commit: the loose
    record outlives it, and the worker deletes the object once due."""
    world = object_world
    assert isinstance(world.content, ObjectContent) and world.objects is not None
    sink = world.content.sink(None)
    sink.write(0, 0, os.urandom(PART_BYTES + 10))  # a part sent, the upload open
    other = world.content.sink(None)
    other.write(0, 0, b"done")
    other.finish()  # a whole object, never named by a letter
    worker = ContentObjects(world.content)
    worker.step()
    # Not yet due: a deposit may still be running.
    assert len(_objects(world)) == 1 and len(world.objects.unfinished()) == 1
    world.clock.advance(seconds=UPLOAD_GRACE.total_seconds() + 1)
    worker.step()
    assert _objects(world) == [] and _count(world, models.LooseObject) == 0
    assert world.objects.unfinished() == []


def test_a_retention_its_process_never_set_is_set_by_the_worker(object_world: World) -> None:
    """The process stops between a deposit's commit and its retention (its
    retainer closed): the row says the retention is unset, and the worker
    sets it, on the object and the row, once the deposit is old enough."""
    world = object_world
    assert isinstance(world.content, ObjectContent) and world.objects is not None
    world.content.close()
    letter = world.deposit("unretained")
    key = world.letter(letter.id).content_object
    assert key is not None and world.letter(letter.id).content_retain_until is None
    assert world.objects.retention(key) is None
    worker = ContentObjects(world.content)
    worker.step()
    # Still its retainer's, for all the worker knows.
    assert world.objects.retention(key) is None
    world.clock.advance(seconds=RETAIN_DELAY.total_seconds() + 1)
    worker.step()
    until = letter.deposit_time + world.policy.content_retention
    assert world.objects.retention(key) == until
    assert world.letter(letter.id).content_retain_until == until


def test_a_legal_hold_holds_the_object_and_the_store_refuses_its_deletion(
    object_world: World, smtp_port: int
) -> None:
    world = object_world
    assert world.objects is not None
    letter_id = _accepted(world, b"%PDF-1.7 held", smtp_port)
    key = world.letter(letter_id).content_object
    assert key is not None
    world.decisions.set_legal_hold(letter_id, True, "operator")
    assert world.objects.held(key) is True
    world.decisions.set_legal_hold(letter_id, False, "operator")
    assert world.objects.held(key) is False
    assert _downloaded(world, letter_id) == b"%PDF-1.7 held"
    # The audit holds the store's lock to the letter's date.
    assert isinstance(world.content, ObjectContent)
    audit = ContentObjects(world.content)
    assert audit.audit() == []
    until = world.letter(letter_id).content_retain_until
    assert until is not None
    with world.stores.begin() as store:
        store.objects.retained(Owner(letter_id), until + dt.timedelta(days=1))
    assert audit.audit() == [
        f"letters/{letter_id}: its content object is not retained until its date"
    ]


def test_the_purge_deletes_every_version_once_the_store_lets_it(
    object_world: World, smtp_port: int
) -> None:
    """The server's clock starts a retention ago, less 5 s: the object's lock
    ends 5 s from now by the store's own clock. The purge comes by the
    server's clock before that: the store refuses the deletion, and the
    worker deletes every version once the lock has ended."""
    world = object_world
    assert world.objects is not None
    retention = world.policy.content_retention
    world.clock.now = dt.datetime.now(dt.UTC).replace(microsecond=0) - retention
    world.clock.advance(seconds=5)
    letter = world.deposit()
    world.clock.advance(seconds=1)
    with Inbox(smtp_port, refuse=True):
        world.drain()  # the notice bounced: a final state
    assert world.letter(letter.id).state is LetterState.NOTIFICATION_FAILED
    key = world.letter(letter.id).content_object
    until = world.objects.retention(key or "")
    assert key is not None and until == letter.deposit_time + retention
    world.clock.now = until
    assert world.retention.purge_content() == 1
    assert world.letter(letter.id).content_object is None  # the row forgets it
    assert isinstance(world.content, ObjectContent)
    worker = ContentObjects(world.content)
    worker.step()
    # Still locked in the store's time: refused, kept, tried again later.
    assert _objects(world) == [key] and len(world.objects.versions(key)) == 1
    assert _count(world, models.LooseObject) == 1
    assert wait_for(lambda: dt.datetime.now(dt.UTC) > until, timeout=10)
    world.clock.advance(hours=2)
    worker.step()
    assert _objects(world) == [] and world.objects.versions(key) == []
    assert _count(world, models.LooseObject) == 0


def test_the_audit_finds_an_object_missing_altered_or_unlocked(
    seaweed: SeaweedServer, database_url: str, signer_process: SignerProcess, smtp_port: int
) -> None:
    """A bucket without Object Lock, where an intruder can do what a locked
    bucket refuses (alter, delete): the audit sees it."""
    objects = seaweed.store(lock=False)
    world = World(database_url, signer_process, Clock(), smtp_port, objects)
    try:
        assert isinstance(world.content, ObjectContent)
        letters = [world.deposit(f"audit-{n}") for n in range(3)]
        keys = [world.letter(letter.id).content_object or "" for letter in letters]
        worker = ContentObjects(world.content, audit_batch=10)
        assert worker.audit() == []
        client = seaweed.client()
        client.put_object(Bucket=objects.bucket, Key=keys[0], Body=b"altered")
        for version in objects.versions(keys[1]):
            client.delete_object(Bucket=objects.bucket, Key=keys[1], VersionId=version)
        assert sorted(worker.audit()) == sorted(
            [
                f"letters/{letters[0].id}: its content object differs from what was written",
                f"letters/{letters[1].id}: its content object is missing",
            ]
        )
    finally:
        world.close()
