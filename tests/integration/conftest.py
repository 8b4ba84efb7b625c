"""The world fixture (tests/integration/world.py), for services and workers alike."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import SignerProcess
from tests.integration.services.conftest import Clock
from tests.integration.world import World
from tests.support import free_port


@pytest.fixture
def smtp_port() -> int:
    return free_port()


@pytest.fixture
def world(database_url: str, signer_process: SignerProcess, smtp_port: int) -> Iterator[World]:
    built = World(database_url, signer_process, Clock(), smtp_port)
    yield built
    built.close()
