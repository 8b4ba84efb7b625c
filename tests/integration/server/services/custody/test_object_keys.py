"""Keys for content objects, recorded as loose several at once: every key
handed out was recorded before, due at least an upload's grace after it is
handed out; a key gone stale is never handed out. Over both databases."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, select

from lre.server.services.custody.object_keys import KEY_FRESH, UPLOAD_GRACE, ObjectKeys
from lre.server.storage import db, models
from lre.server.storage.store import Stores
from tests.support.services import Clock


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = db.make_engine(database_url)
    db.migrate(engine)
    yield engine
    engine.dispose()


def _loose(engine: Engine) -> dict[str, dt.datetime]:
    with db.sessions(engine)() as session:
        rows = session.execute(select(models.LooseObject.object_key, models.LooseObject.due_time))
        return {key: due if due.tzinfo else due.replace(tzinfo=dt.UTC) for key, due in rows}


def test_keys_are_recorded_before_use_in_growing_batches_and_never_handed_out_stale(
    engine: Engine,
) -> None:
    clock = Clock()
    keys = ObjectKeys(Stores(db.sessions(engine)), clock)
    taken = []
    for _ in range(8):
        taken.append(keys.take())
        # Recorded before it is handed out, due an upload's grace later at least.
        assert _loose(engine)[taken[-1]] >= clock() + UPLOAD_GRACE - KEY_FRESH
    assert len(set(taken)) == 8 and all(k.startswith("content/") for k in taken)
    # Batches of 1, 2, 4 and 8: four transactions for eight keys, seven spare.
    spare = set(_loose(engine)) - set(taken)
    assert len(spare) == 7
    clock.advance(seconds=KEY_FRESH.total_seconds())
    # The spare keys are stale now: a new one is recorded and handed out.
    fresh = keys.take()
    assert fresh not in spare and fresh not in taken
    assert _loose(engine)[fresh] == clock() + UPLOAD_GRACE
    # Spare keys going stale halve the next batch (8 to 4).
    assert len(_loose(engine)) == 15 + 4
