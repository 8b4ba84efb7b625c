"""The world fixture (tests/support/world.py), for services and workers alike."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.processes import free_port
from tests.support.seaweed import SeaweedServer
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


@pytest.fixture
def object_world(
    database_url: str, signer_process: SignerProcess, smtp_port: int, seaweed: SeaweedServer
) -> Iterator[World]:
    """The world with its content in an object store (a fresh bucket of the
    session's SeaweedFS server, with Object Lock)."""
    built = World(database_url, signer_process, Clock(), smtp_port, seaweed.store())
    yield built
    built.close()


@pytest.fixture(params=["database", "s3"])
def content_world(
    request: pytest.FixtureRequest,
    database_url: str,
    signer_process: SignerProcess,
    smtp_port: int,
) -> Iterator[World]:
    """The world with its content in the database, then in an object store
    (a fresh bucket of the session's SeaweedFS server, with Object Lock)."""
    objects = None
    if request.param == "s3":
        seaweed: SeaweedServer = request.getfixturevalue("seaweed")
        objects = seaweed.store()
    built = World(database_url, signer_process, Clock(), smtp_port, objects)
    yield built
    built.close()
