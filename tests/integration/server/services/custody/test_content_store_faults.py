"""The object store failing under the custody services: a SeaweedFS server
of the test's own, killed, frozen and started again by its process id;
credentials it refuses. On SQLite only (the database plays no part in
these faults; test_content_store.py runs the content on both), the real signer."""

from __future__ import annotations

import contextlib
import os
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from lre.server.adapters.object_store import ObjectStore
from lre.server.adapters.object_upload import PART_BYTES
from lre.server.adapters.signer import SignerClient
from lre.server.bootstrap.process import NEEDS
from lre.server.bootstrap.wiring import CUSTODY, IDENTITY
from lre.server.domain.errors import DependencyUnavailable
from lre.server.health import DependencyHealth
from lre.server.services.custody import DeclaredPart
from lre.server.services.custody.content_store import ObjectContent
from lre.server.services.custody.object_keys import UPLOAD_GRACE
from lre.server.services.custody.retainer import RETAIN_DELAY
from lre.server.storage import db, models
from lre.server.storage.objects import Owner
from lre.server.workers.content_objects import ContentObjects
from tests.support.mail import Inbox
from tests.support.metrics import metric
from tests.support.seaweed import SeaweedServer, seaweed_server
from tests.support.services import Clock
from tests.support.signer import SignerProcess
from tests.support.world import World

SIZE = PART_BYTES + 700 * 1024


@pytest.fixture
def own(tmp_path: Path) -> Iterator[SeaweedServer]:
    with seaweed_server(tmp_path / "seaweed") as server:
        yield server


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'lre.db'}"


@pytest.fixture
def world(
    database_url: str, signer_process: SignerProcess, smtp_port: int, own: SeaweedServer
) -> Iterator[World]:
    built = World(database_url, signer_process, Clock(), smtp_port, own.store(timeout_s=1.0))
    yield built
    built.close()


def _chunks(data: bytes, after: int, then: object) -> Iterator[tuple[int, bytes]]:
    """``data`` in 1 MiB chunks; ``then()`` runs after ``after`` of them."""
    for n, offset in enumerate(range(0, len(data), 1024 * 1024)):
        if n == after:
            then()  # type: ignore[operator]
        yield 0, data[offset : offset + 1024 * 1024]


def _letters(world: World) -> int:
    with db.sessions(world.engine)() as session:
        return session.scalar(select(func.count()).select_from(models.Letter)) or 0


def test_a_store_down_during_a_deposit_fails_it_whole_and_the_worker_cleans_up(
    world: World, own: SeaweedServer
) -> None:
    data = os.urandom(SIZE)
    assert world.objects is not None
    with pytest.raises(DependencyUnavailable, match="unreachable"):
        world.deposits.deposit(
            world.session,
            "down",
            world.recipient.id,
            [DeclaredPart("big.pdf", "application/pdf", SIZE)],
            # The first part is sent, then the store dies.
            _chunks(data, 8, lambda: own.stop(grace_s=0)),
        )
    assert _letters(world) == 0
    # A small letter while it is down: refused as well, nothing kept.
    with pytest.raises(DependencyUnavailable):
        world.deposit("small")
    assert _letters(world) == 0
    own.start()
    # What the failed deposits left in the store, the worker deletes once due.
    assert world.objects.unfinished() != []
    world.clock.advance(seconds=UPLOAD_GRACE.total_seconds() + 1)
    assert isinstance(world.content, ObjectContent)
    ContentObjects(world.content).step()
    assert world.objects.unfinished() == [] and list(world.objects.keys("")) == []
    # And deposits go through again.
    assert world.deposit("again").content_object is not None


def test_a_store_down_during_a_download_fails_it_and_a_retry_reads_it_whole(
    world: World, own: SeaweedServer, smtp_port: int
) -> None:
    data = os.urandom(SIZE)
    letter, _ = world.deposits.deposit(
        world.session,
        "read",
        world.recipient.id,
        [DeclaredPart("big.pdf", "application/pdf", SIZE)],
        iter([(0, data[i : i + 1024 * 1024]) for i in range(0, SIZE, 1024 * 1024)]),
    )
    world.clock.advance(seconds=2)
    with Inbox(smtp_port):
        world.drain()
    world.decisions.accept(world.recipient_session(), letter.id)
    stream = world.decisions.download(world.recipient_session(), letter.id)
    first = next(stream)
    own.stop(grace_s=0)
    with pytest.raises(DependencyUnavailable, match="unreachable"):
        for _ in stream:
            pass
    own.start()
    again = b"".join(d for _, d in world.decisions.download(world.recipient_session(), letter.id))
    assert again == data and data.startswith(first[1])


def test_a_retention_the_store_refuses_after_the_commit_is_left_to_the_worker(
    world: World, own: SeaweedServer
) -> None:
    letter = world.deposit("retained")
    assert isinstance(world.content, ObjectContent) and world.objects is not None
    assert world.content.settle()
    key = world.letter(letter.id).content_object
    until = world.letter(letter.id).content_retain_until
    assert key is not None and until is not None
    # The same retention again (as for a deposit just committed), the store down.
    owner = Owner(letter.id)
    with world.stores.begin() as store:
        store.objects.retained(owner, None)
    own.stop(grace_s=0)
    world.content.committed(owner, key, letter.deposit_time)
    assert world.content.settle()
    assert world.letter(letter.id).content_retain_until is None
    world.clock.advance(seconds=RETAIN_DELAY.total_seconds() + 1)
    # The worker's round while the store still refuses: found, not set, counted.
    assert world.content.lock_pending() == (1, 0)
    worker = ContentObjects(world.content)
    with contextlib.suppress(DependencyUnavailable):  # its audit, the store being down
        worker.step()
    assert metric("lre_content_objects_unretained") == 1
    own.start()
    worker.step()
    assert metric("lre_content_objects_unretained") == 0
    assert world.letter(letter.id).content_retain_until == until
    assert world.objects.retention(key) == until


def test_a_frozen_store_fails_the_call_within_its_timeout(world: World, own: SeaweedServer) -> None:
    assert own.pid is not None
    os.kill(own.pid, signal.SIGSTOP)
    try:
        with pytest.raises(DependencyUnavailable, match="unreachable"):
            world.deposit("frozen")
    finally:
        os.kill(own.pid, signal.SIGCONT)
    assert _letters(world) == 0


def test_health_names_the_object_store_and_why_it_is_not_serving(
    database_url: str, signer_process: SignerProcess, seaweed: SeaweedServer
) -> None:
    engine = db.make_engine(database_url)
    db.migrate(engine)
    signer = SignerClient(signer_process.grpc_address)
    bucket = seaweed.new_bucket()
    try:

        def health(objects: ObjectStore) -> DependencyHealth:
            # No gRPC process: check() only polls what the services need.
            process: Any = None
            return DependencyHealth(
                engine, signer, process, 1.0, NEEDS, db.SchemaGate(engine), objects
            )

        good = health(ObjectStore(seaweed.settings(bucket)))
        assert good.check()[CUSTODY] is True and good.object_store_problem is None
        wrong = health(ObjectStore(seaweed.settings(bucket, secret_key=uuid.uuid4().hex)))
        serving = wrong.check()
        assert serving[CUSTODY] is False and serving[IDENTITY] is True
        assert wrong.object_store_problem is not None
        assert "refused this server's credentials" in wrong.object_store_problem
        missing = health(ObjectStore(seaweed.settings("no-such-bucket")))
        assert missing.check()[CUSTODY] is False
        assert missing.object_store_problem == "the object store has no such bucket"
    finally:
        signer.close()
        engine.dispose()
