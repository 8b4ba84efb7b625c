"""The identity services over a migrated database (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.orm import Session as DbSession
from sqlalchemy.orm import sessionmaker

from lre.server.services.identity import IdentityPolicy, IdentityService
from lre.server.storage import db
from lre.server.storage.store import Stores
from tests.support.parties import Enrol, enrolled
from tests.support.services import KEY, Clock


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
