"""The identity services over a migrated database (SQLite and PostgreSQL)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pyotp
import pytest
from sqlalchemy.orm import Session as DbSession
from sqlalchemy.orm import sessionmaker

from lre.server.services.identity import IdentityPolicy, IdentityService
from lre.server.storage import db
from lre.server.storage.store import Stores
from tests.integration.services.conftest import KEY, Clock
from tests.support.parties import enrolled

Enrol = Callable[[], tuple[uuid.UUID, pyotp.TOTP]]


@pytest.fixture
def policy() -> IdentityPolicy:
    return IdentityPolicy(secrets_key=KEY)


@pytest.fixture
def database(database_url: str) -> Iterator[sessionmaker[DbSession]]:
    engine = db.make_engine(database_url)
    db.migrate(engine)
    yield db.sessions(engine)
    engine.dispose()


@pytest.fixture
def service(
    database: sessionmaker[DbSession], clock: Clock, policy: IdentityPolicy
) -> IdentityService:
    return IdentityService(Stores(database), policy, clock)


@pytest.fixture
def enrol(service: IdentityService, clock: Clock, database: sessionmaker[DbSession]) -> Enrol:
    """Makes a party proofed and enrolled (password and TOTP) as the party would."""
    return lambda: enrolled(service, clock.now, db.engine_of(database), KEY)
