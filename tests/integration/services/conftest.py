"""Service fixtures: each test runs on SQLite and on PostgreSQL, with a clock it controls."""

from __future__ import annotations

import datetime as dt

import pytest

from lre.server.adapters.at_rest import SecretsKeys

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
