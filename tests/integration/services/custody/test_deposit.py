"""Deposits over SQLite and PostgreSQL and the real signer."""

from __future__ import annotations

import threading
import uuid

from lre.server.storage import db, models
from tests.integration.world import World


def test_the_same_request_id_sent_four_times_at_once_gives_one_letter(world: World) -> None:
    barrier = threading.Barrier(4)
    letters: list[uuid.UUID] = []

    def deposit() -> None:
        barrier.wait()
        letters.append(world.deposit("the-same-request").id)

    threads = [threading.Thread(target=deposit) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(letters) == 4 and len(set(letters)) == 1
    with db.sessions(world.engine)() as session:
        assert session.query(models.Letter).filter_by(request_id="the-same-request").count() == 1
        assert session.query(models.Charge).filter_by(letter_id=letters[0]).count() == 1
        # One notice for the recipient, one proof of deposit for the sender.
        assert session.query(models.OutboxMessage).filter_by(letter_id=letters[0]).count() == 2
