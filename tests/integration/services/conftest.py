"""Service fixtures: each test runs on SQLite and on PostgreSQL, with a clock it controls."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest

from lre.server.adapters.at_rest import SecretsKeys
from lre.server.services.identity import IdentityPolicy, IdentityService
from lre.server.storage import db

KEY = SecretsKeys(bytes(range(32)))


class Clock:
    def __init__(self) -> None:
        self.now = dt.datetime.now(dt.UTC).replace(microsecond=0)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += dt.timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def policy() -> IdentityPolicy:
    return IdentityPolicy(secrets_key=KEY)


@pytest.fixture
def service(database_url: str, clock: Clock, policy: IdentityPolicy) -> Iterator[IdentityService]:
    engine = db.make_engine(database_url)
    db.migrate(engine)
    yield IdentityService(db.sessions(engine), policy, clock)
    engine.dispose()
