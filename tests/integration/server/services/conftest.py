"""Service fixtures: each test runs on SQLite and on PostgreSQL, with a clock it controls."""

from __future__ import annotations

import pytest

from tests.support.services import Clock


@pytest.fixture
def clock() -> Clock:
    return Clock()
