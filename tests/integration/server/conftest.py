"""The world fixture (tests/support/world.py), for services and workers alike."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.processes import free_port
from tests.support.services import Clock
from tests.support.signer import SignerProcess
from tests.support.world import World


@pytest.fixture
def smtp_port() -> int:
    return free_port()


@pytest.fixture
def world(database_url: str, signer_process: SignerProcess, smtp_port: int) -> Iterator[World]:
    built = World(database_url, signer_process, Clock(), smtp_port)
    yield built
    built.close()
